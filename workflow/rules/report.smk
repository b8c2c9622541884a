# Aggregation: every record (SKIP rows for points that have no job here) into tables and plots.


localrules:
    summary,
    record,  # a second of merging JSON: not worth a cluster job


rule summary:
    input:
        records=record_paths(),
        probe=device_probes(),
    output:
        md=report(f"{SUMMARY_DIR}/summary.md", category="Summary", caption="../report/summary.rst"),
        csv=report(f"{SUMMARY_DIR}/summary.csv", category="Summary", caption="../report/summary.rst"),
        plots=report(
            directory(f"{SUMMARY_DIR}/plots"),
            patterns=["{name}.png"],
            category="Plots",
            caption="../report/plots.rst",
        ),
    params:
        machine=MACHINE,  # the resolved name (config `machine` may say `auto`), for the report's caption
    log:
        f"{SUMMARY_DIR}/logs/summary.log",
    run:
        from opbench.report import summarize_workflow

        summarize_workflow(
            points=POINTS,
            records_dir=Path(f"{RESULTS}/records"),
            skipped=SKIPPED,
            results=Path(RESULTS),
            outdir=Path(SUMMARY_DIR),
            title=f"opbench results: {MACHINE}",
            config_hash=CONFIG_HASH,
            log=Path(log[0]),
            problems=PROBLEMS,
            runs_here={name for name, available in AVAILABILITY.items() if available.runs},
            device_probe=Path(input.probe[0]) if input.probe else None,
        )
