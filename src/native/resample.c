// The TensorFlow op PilResample: Pillow's two-pass fixed-point resampling of an 8-bit image (Image.resize's
// ImagingResample for 8-bit bands), as a CPU kernel registered into the TensorFlow the binding has loaded.
//
// Inputs: RGB images [H, W, 3] (uint8); for each axis the taps of every output sample, as
// bounds [out, 2] (first source sample, count) and weights [out, K] (int32 with PRECISION_BITS fractional bits,
// computed by src/image/pil-resize.ts). Output: uint8 [OH, OW, 3]. Like Pillow: the horizontal pass runs first, each
// pass accumulates in int32 from half a unit and keeps (sum >> PRECISION_BITS) clipped to 0..255, and an axis whose
// size does not change is not resampled.
//
// TensorFlow's C API and the addon's register() come from tf_op_addon.h.
#define OP_NAME "PilResample"
#define EXTRA_EXPORTS resample_exports
#include "tf_op_addon.h"

#define PRECISION_BITS 22

// Taps of one axis: output o reads `count` source samples from `first`, weighted by weights[o * taps ...].
typedef struct {
  int64_t out_size;
  int64_t taps;
  const int32_t *bounds;
  const int32_t *weights;
} Axis;

static inline uint8_t clip8(int32_t sum) {
  int32_t value = sum >> PRECISION_BITS;
  return value < 0 ? 0 : value > 255 ? 255 : (uint8_t)value;
}

// One output pixel of the horizontal pass: its three channels summed over its taps, as Pillow does.
static inline void taps_scalar(const uint8_t *p, const int32_t *w, int32_t count, int32_t sums[3]) {
  for (int c = 0; c < 3; c++) sums[c] = 1 << (PRECISION_BITS - 1);
  for (int32_t k = 0; k < count; k++) {
    for (int c = 0; c < 3; c++) sums[c] += (int32_t)p[3 * k + c] * w[k];
  }
}

// The paths of the horizontal pass, fastest last; RESAMPLE_KERNELS=sse4.1 or =scalar picks a slower one (to compare
// them on one machine: all give the same bits).
enum { PATH_SCALAR, PATH_SSE41, PATH_AVX2 };
static const char *const PATH_NAMES[] = {"scalar", "sse4.1", "avx2"};
static int resample_path = PATH_SCALAR;
static pthread_once_t path_once = PTHREAD_ONCE_INIT;

static void choose_path(void) {
  int best = PATH_SCALAR;
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2")) best = PATH_AVX2;
  else if (__builtin_cpu_supports("sse4.1")) best = PATH_SSE41;
#endif
  const char *wanted = getenv("RESAMPLE_KERNELS");
  resample_path = best;
  for (int p = PATH_SCALAR; wanted != NULL && p < best; p++) {
    if (strcmp(wanted, PATH_NAMES[p]) == 0) resample_path = p;
  }
}

// Weights of the AVX2 path: each one split as hi * 2^SPLIT_BITS + lo with lo in [0, 2^SPLIT_BITS), so that both
// halves fit int16 and pmaddwd multiplies them with pixel bytes exactly. Rebuilt as (hi sum << SPLIT_BITS) + lo sum in
// int32, the total wraps exactly as Pillow's int32 sum does. Per output sample, groups of four taps, each group two
// 16-lane vectors (hi, lo): taps k, k + 1 in the low 128 bits and k + 2, k + 3 in the high ones, as R R G G B B 0 0.
#define SPLIT_BITS 11
#define GROUP_LANES 32

// 1 when `*split` holds the weights, 0 when one does not split into int16 halves (not a bilinear filter's), -1 when
// out of memory.
static int split_weights(const Axis *x, int64_t groups, int16_t **split) {
  int16_t *lanes = aligned_alloc(32, (size_t)(x->out_size * groups * GROUP_LANES) * sizeof *lanes);
  if (lanes == NULL) return -1;
  memset(lanes, 0, (size_t)(x->out_size * groups * GROUP_LANES) * sizeof *lanes);
  for (int64_t o = 0; o < x->out_size; o++) {
    const int32_t count = x->bounds[2 * o + 1];
    for (int32_t tap = 0; tap < count; tap++) {
      const int32_t w = x->weights[o * x->taps + tap];
      const int32_t hi = w >> SPLIT_BITS, lo = w - (int32_t)((uint32_t)hi << SPLIT_BITS);
      if (hi < INT16_MIN || hi > INT16_MAX) {
        free(lanes);
        return 0;
      }
      int16_t *group = lanes + (o * groups + tap / 4) * GROUP_LANES + (tap % 4 / 2) * 8 + tap % 2;
      for (int c = 0; c < 3; c++) {
        group[2 * c] = (int16_t)hi;
        group[16 + 2 * c] = (int16_t)lo;
      }
    }
  }
  *split = lanes;
  return 1;
}

#if defined(__x86_64__)
#include <immintrin.h>
// The same sums in the lanes of one SSE4.1 vector: R, G, B and the next pixel's R (never read), four bytes a tap.
__attribute__((target("sse4.1"))) static void taps_sse41(const uint8_t *p, const int32_t *w, int32_t count,
                                                                 int32_t sums[3]) {
  __m128i sum = _mm_set1_epi32(1 << (PRECISION_BITS - 1));
  for (int32_t k = 0; k < count; k++) {
    int32_t bytes;
    memcpy(&bytes, p + 3 * k, sizeof bytes);
    sum = _mm_add_epi32(sum, _mm_mullo_epi32(_mm_cvtepu8_epi32(_mm_cvtsi32_si128(bytes)), _mm_set1_epi32(w[k])));
  }
  sums[0] = _mm_cvtsi128_si32(sum);
  sums[1] = _mm_extract_epi32(sum, 1);
  sums[2] = _mm_extract_epi32(sum, 2);
}

// Four taps a step: 16 bytes from the group's first pixel (12 used) in both halves, shuffled to R R G G B B 0 0 as
// int16, multiplied by the split weights pairwise (pmaddwd); the halves of the sums are added at the end.
__attribute__((target("avx2"))) static void taps_avx2(const uint8_t *p, const int16_t *w, int64_t groups,
                                                             int32_t sums[3]) {
  const __m256i order = _mm256_setr_epi8(0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1, -1, -1, -1, -1,  //
                                         6, -1, 9, -1, 7, -1, 10, -1, 8, -1, 11, -1, -1, -1, -1, -1);
  __m256i hi = _mm256_setzero_si256(), lo = _mm256_setzero_si256();
  for (int64_t g = 0; g < groups; g++, p += 12, w += GROUP_LANES) {
    const __m256i bytes = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)p));
    const __m256i pixels = _mm256_shuffle_epi8(bytes, order);
    hi = _mm256_add_epi32(hi, _mm256_madd_epi16(pixels, _mm256_load_si256((const __m256i *)w)));
    lo = _mm256_add_epi32(lo, _mm256_madd_epi16(pixels, _mm256_load_si256((const __m256i *)(w + 16))));
  }
  const __m128i h = _mm_add_epi32(_mm256_castsi256_si128(hi), _mm256_extracti128_si256(hi, 1));
  const __m128i l = _mm_add_epi32(_mm256_castsi256_si128(lo), _mm256_extracti128_si256(lo, 1));
  const __m128i sum = _mm_add_epi32(_mm_add_epi32(_mm_slli_epi32(h, SPLIT_BITS), l),
                                    _mm_set1_epi32(1 << (PRECISION_BITS - 1)));
  sums[0] = _mm_cvtsi128_si32(sum);
  sums[1] = _mm_extract_epi32(sum, 1);
  sums[2] = _mm_extract_epi32(sum, 2);
}
#endif

// Returns 0 when out of memory.
static int horizontal(const uint8_t *in, int64_t height, int64_t width, const Axis *x, uint8_t *out) {
  pthread_once(&path_once, choose_path);
  const int64_t groups = (x->taps + 3) / 4;
  int16_t *split = NULL;
  int chosen = resample_path;
  if (chosen == PATH_AVX2) {
    const int split_ok = split_weights(x, groups, &split);
    if (split_ok < 0) return 0;
    // A weight too large to split: the SSE4.1 sums give the same bits.
    if (split_ok == 0) chosen = PATH_SSE41;
  }
  const uint8_t *end = in + height * width * 3;
  for (int64_t row = 0; row < height; row++) {
    for (int64_t o = 0; o < x->out_size; o++) {
      const int32_t first = x->bounds[2 * o], count = x->bounds[2 * o + 1];
      const int32_t *w = x->weights + o * x->taps;
      const uint8_t *p = in + (row * width + first) * 3;
      const int64_t used = (count + 3) / 4;
      int32_t sums[3];
      // Near the image's end a vector would read past it: those samples take a narrower path.
#if defined(__x86_64__)
      if (chosen == PATH_AVX2 && p + 12 * used + 4 <= end) taps_avx2(p, split + o * groups * GROUP_LANES, used, sums);
      else if (chosen >= PATH_SSE41 && p + 3 * count < end) taps_sse41(p, w, count, sums);
      else taps_scalar(p, w, count, sums);
#else
      taps_scalar(p, w, count, sums);
#endif
      for (int c = 0; c < 3; c++) out[(row * x->out_size + o) * 3 + c] = clip8(sums[c]);
    }
  }
  free(split);
  return 1;
}

// Row by row of the output, accumulating whole source rows: contiguous, so the compiler vectorises it.
static void vertical(const uint8_t *in, int64_t row_size, const Axis *y, int32_t *sums, uint8_t *out) {
  for (int64_t o = 0; o < y->out_size; o++) {
    const int32_t first = y->bounds[2 * o], count = y->bounds[2 * o + 1];
    const int32_t *w = y->weights + o * y->taps;
    for (int64_t i = 0; i < row_size; i++) sums[i] = 1 << (PRECISION_BITS - 1);
    for (int32_t k = 0; k < count; k++) {
      const uint8_t *row = in + (first + k) * row_size;
      const int32_t weight = w[k];
      for (int64_t i = 0; i < row_size; i++) sums[i] += (int32_t)row[i] * weight;
    }
    for (int64_t i = 0; i < row_size; i++) out[o * row_size + i] = clip8(sums[i]);
  }
}

// Reads one axis's taps from inputs `index` (bounds) and `index + 1` (weights) and checks them against `in_size`.
static int read_axis(TF_OpKernelContext *ctx, int index, int64_t in_size, TF_Tensor **held, Axis *axis,
                     TF_Status *status, char *why, size_t why_size) {
  tf.GetInput(ctx, index, &held[0], status);
  if (tf.GetCode(status) != TF_OK) return 0;
  tf.GetInput(ctx, index + 1, &held[1], status);
  if (tf.GetCode(status) != TF_OK) return 0;
  TF_Tensor *bounds = held[0], *weights = held[1];
  if (tf.TensorType(bounds) != TF_INT32 || tf.NumDims(bounds) != 2 || tf.Dim(bounds, 1) != 2 ||
      tf.TensorType(weights) != TF_INT32 || tf.NumDims(weights) != 2 || tf.Dim(weights, 0) != tf.Dim(bounds, 0)) {
    snprintf(why, why_size, "taps of input %d: bounds must be int32 [out, 2] and weights int32 [out, taps]", index);
    return 0;
  }
  axis->out_size = tf.Dim(bounds, 0);
  axis->taps = tf.Dim(weights, 1);
  axis->bounds = tf.TensorData(bounds);
  axis->weights = tf.TensorData(weights);
  if (axis->out_size < 1) {
    snprintf(why, why_size, "taps of input %d: no output samples", index);
    return 0;
  }
  for (int64_t o = 0; o < axis->out_size; o++) {
    const int64_t first = axis->bounds[2 * o], count = axis->bounds[2 * o + 1];
    if (first < 0 || count < 1 || count > axis->taps || first + count > in_size) {
      snprintf(why, why_size, "taps of input %d: output %lld reads [%lld, %lld) of %lld samples with %lld taps",
               index, (long long)o, (long long)first, (long long)(first + count), (long long)in_size,
               (long long)axis->taps);
      return 0;
    }
  }
  return 1;
}

static void compute(void *kernel, TF_OpKernelContext *ctx) {
  (void)kernel;
  TF_Status *status = tf.NewStatus();
  TF_Tensor *held[6] = {NULL};
  uint8_t *owned = NULL;
  int32_t *sums = NULL;
  char why[256] = "";
  int code = TF_INVALID_ARGUMENT;
  tf.GetInput(ctx, 0, &held[0], status);
  if (tf.GetCode(status) != TF_OK) goto done;
  TF_Tensor *images = held[0];
  if (tf.TensorType(images) != TF_UINT8 || tf.NumDims(images) != 3 || tf.Dim(images, 2) != 3) {
    snprintf(why, sizeof why, "images must be uint8 [height, width, 3]");
    goto done;
  }
  const int64_t height = tf.Dim(images, 0), width = tf.Dim(images, 1), channels = 3;
  Axis x, y;
  if (!read_axis(ctx, 1, width, held + 1, &x, status, why, sizeof why) ||
      !read_axis(ctx, 3, height, held + 3, &y, status, why, sizeof why)) {
    goto done;
  }
  const int64_t dims[3] = {y.out_size, x.out_size, channels};
  TF_Tensor *output = tf.AllocateOutput(ctx, 0, TF_UINT8, dims, 3, (size_t)(y.out_size * x.out_size * channels), status);
  if (tf.GetCode(status) != TF_OK) goto done;
  held[5] = output;
  uint8_t *out = tf.TensorData(output);
  const void *source = tf.TensorData(images);
  const int resize_x = x.out_size != width, resize_y = y.out_size != height;
  const int64_t row_size = x.out_size * channels;
  // The horizontal pass writes straight to the output when the height stays, else to a buffer between the passes.
  const uint8_t *between = source;
  if (resize_x || !resize_y) {
    uint8_t *target = out;
    if (resize_y && (target = owned = malloc((size_t)(height * row_size))) == NULL) goto no_memory;
    if (resize_x && !horizontal(source, height, width, &x, target)) goto no_memory;
    if (!resize_x) memcpy(target, source, (size_t)(height * row_size));
    between = target;
  }
  if (resize_y) {
    if ((sums = malloc((size_t)row_size * sizeof *sums)) == NULL) goto no_memory;
    vertical(between, row_size, &y, sums, out);
  }
  goto done;
no_memory:
  code = TF_RESOURCE_EXHAUSTED;
  snprintf(why, sizeof why, "out of memory between the passes");
done:
  free(owned);
  free(sums);
  if (why[0] != '\0') tf.SetStatus(status, code, why);
  if (tf.GetCode(status) != TF_OK) tf.Failure(ctx, status);
  for (int i = 0; i < 6; i++) {
    if (held[i] != NULL) tf.DeleteTensor(held[i]);
  }
  tf.DeleteStatus(status);
}

static void *create(TF_OpKernelConstruction *ctx) {
  (void)ctx;
  return NULL;
}

static void destroy(void *kernel) { (void)kernel; }

static void define_op(TF_OpDefinitionBuilder *op) {
  tf.AddInput(op, "images: uint8");
  tf.AddInput(op, "x_bounds: int32");
  tf.AddInput(op, "x_weights: int32");
  tf.AddInput(op, "y_bounds: int32");
  tf.AddInput(op, "y_weights: int32");
  tf.AddOutput(op, "resized: uint8");
}

// kernels(): the horizontal pass this process runs ("avx2", "sse4.1" or "scalar", after RESAMPLE_KERNELS).
static napi_value Kernels(napi_env env, napi_callback_info info) {
  (void)info;
  pthread_once(&path_once, choose_path);
  napi_value value;
  napi_create_string_utf8(env, PATH_NAMES[resample_path], NAPI_AUTO_LENGTH, &value);
  return value;
}

static int resample_exports(napi_env env, napi_value exports) {
  napi_value fn;
  return napi_create_function(env, "kernels", NAPI_AUTO_LENGTH, Kernels, NULL, &fn) == napi_ok &&
         napi_set_named_property(env, exports, "kernels", fn) == napi_ok;
}
