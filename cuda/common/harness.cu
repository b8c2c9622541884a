// harness.cu: the driver shared by every variant (convolutions and attention). Linked with one file from
// cuda/variants/, which supplies the variant interface declared in conv2d.cuh.
//
// Order of work (so that argument and file errors never need a GPU):
//   1. parse + validate flags  2. read + check the .npy files   -- no CUDA call before here
//   3. device query, buffers, variant_prepare   4. run or bench   5. one JSON line on stdout.
// Usage errors exit 2, CUDA and other runtime errors exit 1; stdout then stays empty.
//
// `--serve` (the GPU worker, opbench/backends/harness_process.py): one process answers many
// requests and keeps its CUDA context. Each line on stdin is one request, its arguments separated
// by tabs; each answer is one JSON line on stdout, then `kServeEnd` on stderr (the worker's
// cue that the request's messages are complete). Any error still exits (the worker sees the
// end of stdout, fails that request alone with the messages and starts a fresh process).
#include "conv2d.cuh"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <set>

// =============================================================================================
// JSON helpers (declared in conv2d.cuh)
// =============================================================================================
std::string json_escape(const std::string& s) {
  std::string out;
  for (unsigned char ch : s) {
    switch (ch) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (ch < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", ch);
          out += buf;
        } else {
          out += char(ch);
        }
    }
  }
  return out;
}

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

// =============================================================================================
// .npy I/O
// =============================================================================================
namespace {

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    s += std::to_string(shape[i]);
    if (shape.size() == 1 || i + 1 < shape.size()) s += shape.size() == 1 ? "," : ", ";
  }
  return s + ")";
}

// Finds the value text after 'key': in a numpy header dict; "" if absent.
std::string header_value(const std::string& header, const std::string& key, size_t* pos_out) {
  for (const char* quote : {"'", "\""}) {
    const std::string needle = std::string(quote) + key + quote;
    size_t pos = header.find(needle);
    if (pos == std::string::npos) continue;
    pos = header.find(':', pos + needle.size());
    if (pos == std::string::npos) return "";
    ++pos;
    while (pos < header.size() && header[pos] == ' ') ++pos;
    *pos_out = pos;
    return header.substr(pos);
  }
  return "";
}

}  // namespace

bool read_npy_f32(const std::string& path, const std::vector<int64_t>& expected_shape,
                  std::vector<float>& data, std::string& error) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    error = path + ": cannot open (" + std::strerror(errno) + ")";
    return false;
  }
  f.seekg(0, std::ios::end);
  const int64_t file_size = int64_t(f.tellg());
  f.seekg(0, std::ios::beg);
  unsigned char pre[12] = {0};
  f.read(reinterpret_cast<char*>(pre), 10);
  if (!f || std::memcmp(pre, "\x93NUMPY", 6) != 0) {
    error = path + ": not a .npy file (bad magic string)";
    return false;
  }
  const int major = pre[6];
  int64_t header_len = 0, data_start = 0;
  if (major == 1) {
    header_len = int64_t(pre[8]) | (int64_t(pre[9]) << 8);
    data_start = 10 + header_len;
  } else if (major == 2 || major == 3) {
    f.read(reinterpret_cast<char*>(pre + 10), 2);
    if (!f) {
      error = path + ": truncated .npy header";
      return false;
    }
    header_len = int64_t(pre[8]) | (int64_t(pre[9]) << 8) | (int64_t(pre[10]) << 16) |
                 (int64_t(pre[11]) << 24);
    data_start = 12 + header_len;
  } else {
    error = path + ": unsupported .npy format version " + std::to_string(major) + "." +
            std::to_string(int(pre[7]));
    return false;
  }
  if (data_start > file_size) {
    error = path + ": truncated .npy header";
    return false;
  }
  std::string header(size_t(header_len), '\0');
  f.read(&header[0], header_len);
  if (!f) {
    error = path + ": truncated .npy header";
    return false;
  }

  size_t pos = 0;
  std::string v = header_value(header, "descr", &pos);
  if (v.empty() || (v[0] != '\'' && v[0] != '"')) {
    error = path + ": .npy header has no 'descr' (dtype) entry";
    return false;
  }
  const size_t end = v.find(v[0], 1);
  const std::string descr = end == std::string::npos ? "" : v.substr(1, end - 1);
  if (descr != "<f4") {
    error = path + ": dtype is '" + descr + "', expected '<f4' (little-endian float32)";
    return false;
  }
  v = header_value(header, "fortran_order", &pos);
  if (v.compare(0, 5, "False") != 0) {
    error = path + ": array is not in C order (fortran_order must be False)";
    return false;
  }
  v = header_value(header, "shape", &pos);
  if (v.empty() || v[0] != '(' || v.find(')') == std::string::npos) {
    error = path + ": .npy header has no valid 'shape' entry";
    return false;
  }
  std::vector<int64_t> shape;
  {
    const std::string inner = v.substr(1, v.find(')') - 1);
    size_t i = 0;
    while (i < inner.size()) {
      while (i < inner.size() && (inner[i] == ' ' || inner[i] == ',')) ++i;
      if (i >= inner.size()) break;
      char* endp = nullptr;
      const long long dim = std::strtoll(inner.c_str() + i, &endp, 10);
      if (endp == inner.c_str() + i || dim < 0) {
        error = path + ": cannot parse shape '" + v.substr(0, v.find(')') + 1) + "'";
        return false;
      }
      shape.push_back(dim);
      i = size_t(endp - inner.c_str());
    }
  }
  if (shape != expected_shape) {
    error = path + ": shape is " + shape_str(shape) + ", expected " + shape_str(expected_shape) +
            " from the problem flags";
    return false;
  }
  int64_t count = 1;
  for (int64_t d : shape) count *= d;
  const int64_t data_bytes = file_size - data_start;
  if (data_bytes != count * int64_t(sizeof(float))) {
    error = path + ": data section has " + std::to_string(data_bytes) + " bytes, expected " +
            std::to_string(count * int64_t(sizeof(float))) + " for shape " + shape_str(shape);
    return false;
  }
  data.resize(size_t(count));
  f.seekg(data_start, std::ios::beg);
  f.read(reinterpret_cast<char*>(data.data()), std::streamsize(count * sizeof(float)));
  if (!f) {
    error = path + ": read error in data section";
    return false;
  }
  return true;
}

bool write_npy_f32(const std::string& path, const std::vector<int64_t>& shape, const float* data,
                   std::string& error) {
  std::string header =
      "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape_str(shape) + ", }";
  // Version 1.0: 10-byte preamble + header, padded with spaces to a multiple of 64, '\n' last.
  const size_t total = ((10 + header.size() + 1 + 63) / 64) * 64;
  header.append(total - 10 - header.size() - 1, ' ');
  header += '\n';
  if (header.size() > 65535) {
    error = path + ": .npy header too long";
    return false;
  }
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) {
    error = path + ": cannot open for writing (" + std::strerror(errno) + ")";
    return false;
  }
  const unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
                                 (unsigned char)(header.size() & 0xff),
                                 (unsigned char)(header.size() >> 8)};
  int64_t count = 1;
  for (int64_t d : shape) count *= d;
  f.write(reinterpret_cast<const char*>(pre), 10);
  f.write(header.data(), std::streamsize(header.size()));
  f.write(reinterpret_cast<const char*>(data), std::streamsize(count * sizeof(float)));
  f.close();
  if (!f) {
    error = path + ": write failed";
    return false;
  }
  return true;
}

// =============================================================================================
// Command line
// =============================================================================================
namespace {

const char* kUsage =
    "usage: conv2d_<variant> --mode run|bench --input X.npy --filter W.npy [--output Y.npy]\n"
    "         [--op conv2d|depthwise_conv2d|separable_conv2d] [--pw-filter PW.npy]\n"
    "         --n N --h H --w W --c C --k K --r R --s S\n"
    "         --stride-h SH --stride-w SW --pad-h PH --pad-w PW [--dil-h 1] [--dil-w 1]\n"
    "         [--dtype f32|f16|bf16] [--warmup-ms 50] [--reps 30] [--min-sample-ms 1.0] [--flush-l2 1]\n"
    "  X: NHWC float32 [N,H,W,C]; W: KRSC float32 [K,R,S,C]; Y: NHWC float32 [N,P,Q,K].\n"
    "  --op depthwise_conv2d (one filter per channel): W is RSC [R,S,C]; --k is C (may be left out).\n"
    "  --op separable_conv2d (depthwise R x S, then a 1x1 from C to K channels): W is the depthwise\n"
    "  filter RSC [R,S,C], --pw-filter the pointwise [K,C]; the variant gets them back to back.\n"
    "  --dtype: the type X, W and Y are stored in on the GPU (X and W converted from the float32\n"
    "  files with round-to-nearest-even, exact for inputs already rounded to it; Y written to\n"
    "  the .npy file as float32); kernels accumulate in float32.\n"
    "  --output is required with --mode run (optional with bench: writes the run-mode result).\n"
    "  Prints one JSON object on stdout.\n"
    "attention: conv2d_<variant> --op attention --mode run|bench --q Q.npy --k K.npy --v V.npy\n"
    "         [--output O.npy] --b B --heads H --s S --d D [--causal 0|1] [--dtype ...] [timing flags]\n"
    "  Q, K, V and O: float32 [B,H,S,D] files (bhsd), stored on the GPU as --dtype; --causal 1: query i\n"
    "  sees keys 0..i. (--k and --s name the key file and the sequence length here.)\n";

[[noreturn]] void usage_error(const std::string& msg) {
  std::fprintf(stderr, "error: %s\n%s", msg.c_str(), kUsage);
  std::exit(2);
}

struct Options {
  std::string mode, input, filter, pw_filter, output;
  std::string q, k, v;  // --op attention: the Q, K and V files (input, filter, pw_filter stay empty)
  ConvProblem prob;
  double warmup_ms = 50.0;
  int reps = 30;
  double min_sample_ms = 1.0;
  int flush_l2 = 1;
};

long long parse_int(const std::string& flag, const std::string& text) {
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE || v < -2147483648LL || v > 2147483647LL)
    usage_error(flag + " expects an integer, got '" + text + "'");
  return v;
}

double parse_double(const std::string& flag, const std::string& text) {
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(v))
    usage_error(flag + " expects a number, got '" + text + "'");
  return v;
}

Options parse_common(Options o, std::map<std::string, std::string>& kv);

Options parse_args(int argc, char** argv) {
  static const std::set<std::string> kKnown = {
      "--mode", "--op", "--input", "--filter", "--pw-filter", "--output", "--n", "--h", "--w", "--c", "--k", "--r",
      "--s", "--stride-h", "--stride-w", "--pad-h", "--pad-w", "--dil-h", "--dil-w", "--dtype",
      "--warmup-ms", "--reps", "--min-sample-ms", "--flush-l2",
      "--q", "--v", "--b", "--heads", "--d", "--causal"};  // the last six: --op attention only
  // The flags of one kind of op only (--k and --s belong to both: K channels / filter width for
  // the convolutions, the key file / sequence length for attention).
  static const char* const kAttentionOnly[] = {"--q", "--v", "--b", "--heads", "--d", "--causal"};
  static const char* const kConvOnly[] = {
      "--input", "--filter", "--pw-filter", "--n", "--h", "--w", "--c", "--r",
      "--stride-h", "--stride-w", "--pad-h", "--pad-w", "--dil-h", "--dil-w"};
  std::map<std::string, std::string> kv;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fprintf(stderr, "%s", kUsage);
      std::exit(0);
    }
    std::string value;
    const size_t eq = a.find('=');
    if (a.compare(0, 2, "--") == 0 && eq != std::string::npos) {
      value = a.substr(eq + 1);
      a = a.substr(0, eq);
    } else {
      if (!kKnown.count(a)) usage_error("unknown argument '" + a + "'");
      if (i + 1 >= argc) usage_error("flag " + a + " needs a value");
      value = argv[++i];
    }
    if (!kKnown.count(a)) usage_error("unknown argument '" + a + "'");
    if (kv.count(a)) usage_error("flag " + a + " given twice");
    kv[a] = value;
  }
  auto required = [&](const char* flag) -> const std::string& {
    auto it = kv.find(flag);
    if (it == kv.end()) usage_error(std::string("missing required flag ") + flag);
    return it->second;
  };
  auto req_int = [&](const char* flag) { return int(parse_int(flag, required(flag))); };
  auto opt_int = [&](const char* flag, int dflt) {
    auto it = kv.find(flag);
    return it == kv.end() ? dflt : int(parse_int(flag, it->second));
  };

  Options o;
  o.mode = required("--mode");
  if (o.mode != "run" && o.mode != "bench")
    usage_error("--mode must be 'run' or 'bench', got '" + o.mode + "'");
  ConvProblem& p = o.prob;
  if (kv.count("--op") && kv["--op"] == "attention") {
    for (const char* flag : kConvOnly)
      if (kv.count(flag)) usage_error(std::string(flag) + " is not a flag of --op attention");
    o.q = required("--q");
    o.k = required("--k");
    o.v = required("--v");
    if (kv.count("--output")) o.output = kv["--output"];
    if (o.mode == "run" && o.output.empty()) usage_error("missing required flag --output (--mode run)");
    p.op = OpKind::attention;
    p.attn.b = req_int("--b");
    p.attn.heads = req_int("--heads");
    p.attn.s = req_int("--s");
    p.attn.d = req_int("--d");
    p.attn.causal = opt_int("--causal", 0);
    return parse_common(o, kv);
  }
  o.input = required("--input");
  o.filter = required("--filter");
  if (kv.count("--output")) o.output = kv["--output"];
  if (o.mode == "run" && o.output.empty()) usage_error("missing required flag --output (--mode run)");
  const std::string op = kv.count("--op") ? kv["--op"] : "conv2d";
  if (op == "conv2d") p.op = OpKind::conv2d;
  else if (op == "depthwise_conv2d") p.op = OpKind::depthwise_conv2d;
  else if (op == "separable_conv2d") p.op = OpKind::separable_conv2d;
  else usage_error("--op must be conv2d, depthwise_conv2d, separable_conv2d or attention, got '" + op + "'");
  for (const char* flag : kAttentionOnly)
    if (kv.count(flag)) usage_error(std::string(flag) + " is for --op attention only");
  if (p.op == OpKind::separable_conv2d) o.pw_filter = required("--pw-filter");
  else if (kv.count("--pw-filter")) usage_error("--pw-filter is for --op separable_conv2d only");
  p.n = req_int("--n");
  p.h = req_int("--h");
  p.w = req_int("--w");
  p.c = req_int("--c");
  p.k = p.op == OpKind::depthwise_conv2d ? opt_int("--k", p.c) : req_int("--k");
  p.r = req_int("--r");
  p.s = req_int("--s");
  p.stride_h = req_int("--stride-h");
  p.stride_w = req_int("--stride-w");
  p.pad_h = req_int("--pad-h");
  p.pad_w = req_int("--pad-w");
  p.dil_h = opt_int("--dil-h", 1);
  p.dil_w = opt_int("--dil-w", 1);
  return parse_common(o, kv);
}

// The flags every op shares (--dtype and the timing flags), then the problem's own checks.
Options parse_common(Options o, std::map<std::string, std::string>& kv) {
  auto opt_int = [&](const char* flag, int dflt) {
    auto it = kv.find(flag);
    return it == kv.end() ? dflt : int(parse_int(flag, it->second));
  };
  auto opt_double = [&](const char* flag, double dflt) {
    auto it = kv.find(flag);
    return it == kv.end() ? dflt : parse_double(flag, it->second);
  };
  ConvProblem& p = o.prob;
  const std::string dtype = kv.count("--dtype") ? kv["--dtype"] : "f32";
  if (dtype == "f32") p.elem = ElemType::f32;
  else if (dtype == "f16") p.elem = ElemType::f16;
  else if (dtype == "bf16") p.elem = ElemType::bf16;
  else usage_error("--dtype must be f32, f16 or bf16, got '" + dtype + "'");
  o.warmup_ms = opt_double("--warmup-ms", 50.0);
  o.reps = opt_int("--reps", 30);
  o.min_sample_ms = opt_double("--min-sample-ms", 1.0);
  o.flush_l2 = opt_int("--flush-l2", 1);

  const std::string err = p.finalize();
  if (!err.empty()) usage_error(err);
  if (o.warmup_ms < 0) usage_error("--warmup-ms must be >= 0");
  if (o.reps < 1) usage_error("--reps must be >= 1");
  if (!(o.min_sample_ms > 0)) usage_error("--min-sample-ms must be > 0");
  if (o.flush_l2 != 0 && o.flush_l2 != 1) usage_error("--flush-l2 must be 0 or 1");
  return o;
}

// =============================================================================================
// Device side helpers
// =============================================================================================
struct DeviceInfo {
  std::string name;
  int sm_count = 0, cc_major = 0, cc_minor = 0, l2_bytes = 0, driver = 0, runtime = 0;
};

DeviceInfo query_device(int dev) {
  DeviceInfo d;
  cudaDeviceProp prop;
  CHECK_CUDA(cudaGetDeviceProperties(&prop, dev));
  d.name = prop.name;
  CHECK_CUDA(cudaDeviceGetAttribute(&d.sm_count, cudaDevAttrMultiProcessorCount, dev));
  CHECK_CUDA(cudaDeviceGetAttribute(&d.cc_major, cudaDevAttrComputeCapabilityMajor, dev));
  CHECK_CUDA(cudaDeviceGetAttribute(&d.cc_minor, cudaDevAttrComputeCapabilityMinor, dev));
  CHECK_CUDA(cudaDeviceGetAttribute(&d.l2_bytes, cudaDevAttrL2CacheSize, dev));
  CHECK_CUDA(cudaDriverGetVersion(&d.driver));
  CHECK_CUDA(cudaRuntimeGetVersion(&d.runtime));
  return d;
}

// Output comparison for the bench consistency check. Equal if bitwise identical, or (both
// finite) |a-b| <= 1e-6 * max(|a|, |b|, max|ref|) + 2u * max(|a|, |b|), u the unit roundoff of Y's type: the
// first term admits the reassociation error of atomics near zero-crossings, the second a
// float32 sum that rounds to the neighbouring 16-bit value, while any wrong or unwritten
// element is still caught (unwritten elements hold NaN poison and never compare equal).
struct Comparison {
  bool consistent = true;
  int64_t bitwise_mismatches = 0;
  double max_abs_diff = 0.0;
};

Comparison compare_outputs(const std::vector<float>& ref, const std::vector<float>& got,
                           double unit_roundoff) {
  Comparison c;
  double ref_max = 0.0;
  for (float v : ref)
    if (std::isfinite(v)) ref_max = std::max(ref_max, double(std::fabs(v)));
  for (size_t i = 0; i < ref.size(); ++i) {
    if (std::memcmp(&ref[i], &got[i], sizeof(float)) == 0) continue;
    ++c.bitwise_mismatches;
    const double a = ref[i], b = got[i];
    if (!std::isfinite(a) || !std::isfinite(b)) {
      c.consistent = false;
      c.max_abs_diff = INFINITY;
      continue;
    }
    const double d = std::fabs(a - b);
    c.max_abs_diff = std::max(c.max_abs_diff, d);
    const double mag = std::max(std::fabs(a), std::fabs(b));
    if (d > 1e-6 * std::max(mag, ref_max) + 2.0 * unit_roundoff * mag) c.consistent = false;
  }
  return c;
}

// The bytes of `values` stored as `elem` (round-to-nearest-even for the 16-bit types).
std::vector<unsigned char> to_device_bytes(const std::vector<float>& values, ElemType elem) {
  std::vector<unsigned char> bytes(values.size() * elem_bytes(elem));
  for (size_t i = 0; i < values.size(); ++i) {
    if (elem == ElemType::f16) {
      const __half v = __float2half_rn(values[i]);
      std::memcpy(&bytes[2 * i], &v, 2);
    } else if (elem == ElemType::bf16) {
      const __nv_bfloat16 v = __float2bfloat16_rn(values[i]);
      std::memcpy(&bytes[2 * i], &v, 2);
    } else {
      std::memcpy(&bytes[4 * i], &values[i], 4);
    }
  }
  return bytes;
}

std::string problem_json(const ConvProblem& p) {
  Json j;
  j.add_str("op", op_name(p.op));
  if (p.op == OpKind::attention) {
    j.add_int("b", p.attn.b).add_int("heads", p.attn.heads).add_int("s", p.attn.s);
    j.add_int("d", p.attn.d).add_bool("causal", p.attn.causal != 0);
    j.add_str("dtype", elem_name(p.elem));
    return j.str();
  }
  j.add_int("n", p.n).add_int("h", p.h).add_int("w", p.w).add_int("c", p.c).add_int("k", p.k);
  j.add_int("r", p.r).add_int("s", p.s).add_int("stride_h", p.stride_h);
  j.add_int("stride_w", p.stride_w).add_int("pad_h", p.pad_h).add_int("pad_w", p.pad_w);
  j.add_int("dil_h", p.dil_h).add_int("dil_w", p.dil_w).add_int("p", p.p).add_int("q", p.q);
  j.add_str("dtype", elem_name(p.elem));
  return j.str();
}

}  // namespace

// =============================================================================================
// main
// =============================================================================================
// One request: read the inputs, run or time, return the JSON record (steps 2 to 5 above).
// The op's input files as the variant's two input buffers: X, and Wt (a separable problem's two
// filters, or attention's K and V, back to back). Returns the output's shape.
std::vector<int64_t> read_inputs(const Options& opt, std::vector<float>& h_x,
                                 std::vector<float>& h_w) {
  const ConvProblem& prob = opt.prob;
  std::string err;
  if (prob.op == OpKind::attention) {  // Q as X; K then V as Wt; O [B,H,S,D]
    const AttentionSizes& a = prob.attn;
    const std::vector<int64_t> bhsd = {a.b, a.heads, a.s, a.d};
    std::vector<float> h_v;
    if (!read_npy_f32(opt.q, bhsd, h_x, err)) usage_error(err);
    if (!read_npy_f32(opt.k, bhsd, h_w, err)) usage_error(err);
    if (!read_npy_f32(opt.v, bhsd, h_v, err)) usage_error(err);
    h_w.insert(h_w.end(), h_v.begin(), h_v.end());
    return bhsd;
  }
  if (!read_npy_f32(opt.input, {prob.n, prob.h, prob.w, prob.c}, h_x, err)) usage_error(err);
  const std::vector<int64_t> w_shape =
      prob.op == OpKind::conv2d ? std::vector<int64_t>{prob.k, prob.r, prob.s, prob.c}
                                : std::vector<int64_t>{prob.r, prob.s, prob.c};
  if (!read_npy_f32(opt.filter, w_shape, h_w, err)) usage_error(err);
  if (prob.op == OpKind::separable_conv2d) {  // the pointwise filter after the depthwise one
    std::vector<float> h_pw;
    if (!read_npy_f32(opt.pw_filter, {prob.k, prob.c}, h_pw, err)) usage_error(err);
    h_w.insert(h_w.end(), h_pw.begin(), h_pw.end());
  }
  return {prob.n, prob.p, prob.q, prob.k};
}

std::string serve_request(const Options& opt) {
  const ConvProblem& prob = opt.prob;
  std::vector<float> h_x, h_w;
  std::string err;
  const std::vector<int64_t> y_shape = read_inputs(opt, h_x, h_w);

  // ---- 3: device, buffers, prepare ----------------------------------------------------------
  int dev = 0;
  CHECK_CUDA(cudaSetDevice(dev));
  const DeviceInfo info = query_device(dev);
  cudaStream_t stream;
  CHECK_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));

  const std::vector<unsigned char> x_host = to_device_bytes(h_x, prob.elem);
  const std::vector<unsigned char> w_host = to_device_bytes(h_w, prob.elem);
  const size_t x_bytes = x_host.size();
  const size_t w_bytes = w_host.size();
  const size_t y_bytes = prob.y_bytes();
  const size_t set_bytes = x_bytes + w_bytes + y_bytes;
  const size_t ws_bytes = variant_workspace_bytes(prob);

  // Number of (X, Wt, Y) copies: enough that their total exceeds 2x L2 (bench + flush), capped
  // at 64 copies and at 80% of the free memory left after the workspace and the check buffer.
  constexpr int kMaxCopies = 64;
  int copies = 1;
  if (opt.mode == "bench" && opt.flush_l2) {
    const size_t want_bytes = 2 * size_t(info.l2_bytes);
    copies = int(std::min<size_t>(kMaxCopies, want_bytes / set_bytes + 1));
    size_t free_b = 0, total_b = 0;
    CHECK_CUDA(cudaMemGetInfo(&free_b, &total_b));
    const size_t reserve = ws_bytes + y_bytes + (size_t(256) << 20);
    const size_t usable = free_b > reserve ? size_t(0.8 * double(free_b - reserve)) : 0;
    copies = std::max(1, std::min<int>(copies, int(usable / set_bytes)));
  }
  const bool flush_effective = opt.flush_l2 && double(copies) * double(set_bytes) >
                                                   2.0 * double(info.l2_bytes);
  if (opt.mode == "bench" && opt.flush_l2 && !flush_effective)
    std::fprintf(stderr, "warning: only %d buffer copies (%.1f MB) fit; L2 (%d bytes) is not "
                 "fully flushed between launches\n", copies,
                 double(copies) * double(set_bytes) / 1e6, info.l2_bytes);

  std::vector<DeviceSet> sets(copies);
  std::vector<void*> allocations;
  for (int i = 0; i < copies; ++i) {
    void *x, *w, *y;
    CHECK_CUDA(cudaMalloc(&x, x_bytes));
    CHECK_CUDA(cudaMalloc(&w, w_bytes));
    CHECK_CUDA(cudaMalloc(&y, y_bytes));
    allocations.insert(allocations.end(), {x, w, y});
    if (i == 0) {
      CHECK_CUDA(cudaMemcpy(x, x_host.data(), x_bytes, cudaMemcpyHostToDevice));
      CHECK_CUDA(cudaMemcpy(w, w_host.data(), w_bytes, cudaMemcpyHostToDevice));
    } else {
      CHECK_CUDA(cudaMemcpy(x, sets[0].x, x_bytes, cudaMemcpyDeviceToDevice));
      CHECK_CUDA(cudaMemcpy(w, sets[0].w, w_bytes, cudaMemcpyDeviceToDevice));
    }
    sets[i] = DeviceSet{x, w, y};
  }
  void* workspace = nullptr;
  if (ws_bytes > 0) {
    CHECK_CUDA(cudaMalloc(&workspace, ws_bytes));
    allocations.push_back(workspace);
  }
  void* y_check = nullptr;  // fresh run-mode result, separate from every bench copy
  CHECK_CUDA(cudaMalloc(&y_check, y_bytes));
  allocations.push_back(y_check);
  CHECK_CUDA(cudaDeviceSynchronize());

  variant_prepare(prob, sets.data(), copies, workspace, stream);
  CHECK_CUDA(cudaStreamSynchronize(stream));
  Json detail, launch_config;
  variant_describe(prob, detail, launch_config);

  // Run-mode result: poison with NaN bytes (0xFFFF is a NaN in f16 and bf16 too), launch once,
  // copy back as float32.
  std::vector<float> h_ref;
  auto run_once = [&](void* y) {
    CHECK_CUDA(cudaMemsetAsync(y, 0xFF, y_bytes, stream));
    variant_launch(prob, sets[0].x, sets[0].w, y, workspace, stream);
    CHECK_LAUNCH();
    CHECK_CUDA(cudaStreamSynchronize(stream));
    h_ref = copy_output(prob, y);
  };

  // ---- 4: run or bench ----------------------------------------------------------------------
  std::vector<double> samples_ms;
  int inner = 0;
  std::string consistent_json = "null";
  Json bench_check;
  if (opt.mode == "run") {
    run_once(y_check);
  } else {
    for (const DeviceSet& s : sets) CHECK_CUDA(cudaMemsetAsync(s.y, 0xFF, y_bytes, stream));
    long long launch_idx = 0;
    auto launch_next = [&]() {
      const DeviceSet& s = sets[size_t(launch_idx++ % copies)];
      variant_launch(prob, s.x, s.w, s.y, workspace, stream);
      CHECK_LAUNCH();
    };
    cudaEvent_t ev0, ev1;
    CHECK_CUDA(cudaEventCreate(&ev0));
    CHECK_CUDA(cudaEventCreate(&ev1));
    // Times `count` back-to-back launches; returns total ms.
    auto timed_batch = [&](long long count) {
      CHECK_CUDA(cudaEventRecord(ev0, stream));
      for (long long i = 0; i < count; ++i) launch_next();
      CHECK_CUDA(cudaEventRecord(ev1, stream));
      CHECK_CUDA(cudaEventSynchronize(ev1));
      float ms = 0.f;
      CHECK_CUDA(cudaEventElapsedTime(&ms, ev0, ev1));
      return double(ms);
    };
    // Warm-up: batches of growing size until --warmup-ms of device time has passed.
    double warm_ms = 0.0;
    long long warm_launches = 0, batch = 1;
    do {
      warm_ms += timed_batch(batch);
      warm_launches += batch;
      batch = std::min<long long>(batch * 2, 1024);
    } while (warm_ms < opt.warmup_ms);
    // Calibrate `inner` so one sample lasts >= --min-sample-ms (measured on stream launches,
    // which are never faster than the graph replay of the same launches).
    constexpr long long kMaxInner = 1 << 20;
    const double est_ms = std::max(warm_ms / double(warm_launches), 1e-6);
    inner = int(std::min<double>(kMaxInner, std::max(1.0, std::ceil(opt.min_sample_ms / est_ms))));
    for (;;) {
      const double t = timed_batch(inner);
      if (t >= opt.min_sample_ms || inner >= kMaxInner) break;
      inner = int(std::min<double>(kMaxInner, std::ceil(inner * 1.25 * opt.min_sample_ms /
                                                        std::max(t, 1e-6))));
    }
    // The samples replay one CUDA graph of `inner` launches (the same rotation through the
    // buffer copies), so the host's launch rate never limits a short kernel: device time, timed
    // the way the cuDNN rows are.
    cudaGraph_t graph;
    cudaGraphExec_t graph_exec;
    CHECK_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    for (int i = 0; i < inner; ++i) launch_next();
    CHECK_CUDA(cudaStreamEndCapture(stream, &graph));
    CHECK_CUDA(cudaGraphInstantiate(&graph_exec, graph, 0));
    auto timed_replay = [&]() {
      CHECK_CUDA(cudaEventRecord(ev0, stream));
      CHECK_CUDA(cudaGraphLaunch(graph_exec, stream));
      CHECK_CUDA(cudaEventRecord(ev1, stream));
      CHECK_CUDA(cudaEventSynchronize(ev1));
      float ms = 0.f;
      CHECK_CUDA(cudaEventElapsedTime(&ms, ev0, ev1));
      return double(ms);
    };
    timed_replay();  // the first replay uploads the graph
    for (int rep = 0; rep < opt.reps; ++rep) samples_ms.push_back(timed_replay() / inner);
    CHECK_CUDA(cudaGraphExecDestroy(graph_exec));
    CHECK_CUDA(cudaGraphDestroy(graph));
    CHECK_CUDA(cudaEventDestroy(ev0));
    CHECK_CUDA(cudaEventDestroy(ev1));

    // Consistency: output of the last timed launch vs a fresh run-mode result (every replay
    // ends with the graph's last launch, launch index launch_idx - 1).
    const DeviceSet& last = sets[size_t((launch_idx - 1) % copies)];
    const std::vector<float> h_bench = copy_output(prob, last.y);
    run_once(y_check);
    const Comparison cmp = compare_outputs(h_ref, h_bench, y_unit_roundoff(prob));
    consistent_json = cmp.consistent ? "true" : "false";
    bench_check.add_int("bitwise_mismatches", cmp.bitwise_mismatches)
        .add_num("max_abs_diff", cmp.max_abs_diff);
    if (!cmp.consistent)
      std::fprintf(stderr, "warning: bench output differs from a fresh run (%lld elements, "
                   "max |diff| %g)\n", (long long)cmp.bitwise_mismatches, cmp.max_abs_diff);
  }
  if (!opt.output.empty() && !write_npy_f32(opt.output, y_shape, h_ref.data(), err)) {
    std::fprintf(stderr, "error: %s\n", err.c_str());
    std::exit(1);
  }
  for (void* p : allocations) CHECK_CUDA(cudaFree(p));
  CHECK_CUDA(cudaStreamDestroy(stream));

  // ---- 5: the record ------------------------------------------------------------------------
  std::string samples = "[";
  for (size_t i = 0; i < samples_ms.size(); ++i)
    samples += (i ? ", " : "") + json_number(samples_ms[i]);
  samples += "]";
  Json out;
  out.add_str("variant", variant_name())
      .add_str("mode", opt.mode)
      .add_raw("problem", problem_json(prob))
      .add_str("device", info.name)
      .add_int("sm_count", info.sm_count)
      .add_str("cc", std::to_string(info.cc_major) + "." + std::to_string(info.cc_minor))
      .add_int("l2_bytes", info.l2_bytes)
      .add_int("driver_version", info.driver)
      .add_int("runtime_version", info.runtime)
      .add_raw("samples_ms", samples)
      .add_int("inner", inner)
      .add_int("buffer_copies", copies)
      .add_int("buffer_bytes", (long long)(double(copies) * double(set_bytes)))
      .add_int("workspace_bytes", (long long)ws_bytes)
      .add_int("flush_l2", opt.flush_l2)
      .add_bool("l2_flush_effective", flush_effective)
      .add_raw("bench_output_consistent", consistent_json)
      .add_raw("bench_check", opt.mode == "bench" ? bench_check.str() : "null")
      .add_raw("detail", detail.str())
      .add_raw("launch_config", launch_config.str());
  return out.str();
}

constexpr const char* kServeEnd = "opbench-harness: request done";

// Split one request line into argv (tab-separated; argv[0] is the program's name).
std::vector<std::string> request_args(const char* program, const std::string& line) {
  std::vector<std::string> args = {program};
  size_t start = 0;
  for (;;) {
    const size_t tab = line.find('\t', start);
    args.push_back(line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
    if (tab == std::string::npos) return args;
    start = tab + 1;
  }
}

Options parse_arg_strings(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  return parse_args(int(argv.size()), argv.data());
}

int main(int argc, char** argv) {
  if (argc == 2 && std::string(argv[1]) == "--serve") {
    std::string line;
    while (std::getline(std::cin, line)) {
      if (line.empty()) continue;
      const std::string record = serve_request(parse_arg_strings(request_args(argv[0], line)));
      std::printf("%s\n", record.c_str());
      std::fflush(stdout);
      std::fprintf(stderr, "%s\n", kServeEnd);
      std::fflush(stderr);
    }
    return 0;
  }
  // ---- 1: everything that can fail without a GPU, before the first CUDA call --------------
  const Options opt = parse_args(argc, argv);
  std::printf("%s\n", serve_request(opt).c_str());
  return 0;
}
