// Benchmark baseline: OpenBLAS called directly, with no sparq code in between, so the benchmarks can
// compare sparq's gemm/syrk against the library it wraps in the same run. Not part of the package API.
#include <cblas.h>
#include <node_api.h>

static float* floatArg(napi_env env, napi_value value, size_t* length) {
  napi_typedarray_type type;
  void* data = NULL;
  napi_value buffer;
  size_t offset;
  if (napi_get_typedarray_info(env, value, &type, length, &data, &buffer, &offset) != napi_ok ||
      type != napi_float32_array) {
    napi_throw_type_error(env, NULL, "expected a Float32Array");
    return NULL;
  }
  return (float*)data;
}

static int intArg(napi_env env, napi_value value) {
  int32_t v = 0;
  napi_get_value_int32(env, value, &v);
  return v;
}

// sgemm(a, b, c, m, n, k): c = a·b, row-major, no checks beyond the array type.
static napi_value sgemm(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  size_t la, lb, lc;
  float* a = floatArg(env, argv[0], &la);
  float* b = floatArg(env, argv[1], &lb);
  float* c = floatArg(env, argv[2], &lc);
  if (!a || !b || !c) return NULL;
  const int m = intArg(env, argv[3]), n = intArg(env, argv[4]), k = intArg(env, argv[5]);
  if ((size_t)m * k > la || (size_t)k * n > lb || (size_t)m * n > lc) {
    napi_throw_range_error(env, NULL, "arrays too small for m, n, k");
    return NULL;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
  return NULL;
}

// ssyrk(x, c, rows, n): lower triangle of c = xᵀx.
static napi_value ssyrk(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  size_t lx, lc;
  float* x = floatArg(env, argv[0], &lx);
  float* c = floatArg(env, argv[1], &lc);
  if (!x || !c) return NULL;
  const int rows = intArg(env, argv[2]), n = intArg(env, argv[3]);
  if ((size_t)rows * n > lx || (size_t)n * n > lc) {
    napi_throw_range_error(env, NULL, "arrays too small for rows, n");
    return NULL;
  }
  cblas_ssyrk(CblasRowMajor, CblasLower, CblasTrans, n, rows, 1.0f, x, n, 0.0f, c, n);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"sgemm", NULL, sgemm, NULL, NULL, NULL, napi_default, NULL},
      {"ssyrk", NULL, ssyrk, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, 2, props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
