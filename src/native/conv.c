// The TensorFlow op PackedConv2D: a 2-D convolution of float32 NHWC images plus a bias, an optional residual (added
// after the bias) and an optional ReLU or ReLU6, whose filter the session graph packed once, when it was written
// (src/engine/packed-conv.ts), into panels of PANEL output channels: filter[p][k][j] is the weight of input k (kernel
// row, column, channel) for output channel p * PANEL + j, zero past the last channel. TensorFlow's own CPU
// convolution packs its filter again on every call (docs/runtime.md, "The convolution op").
//
// Inputs: images [N, H, W, C] (or a matrix [N, C]: N images of 1 x 1, for a matrix product), filter
// [ceil(Cout / PANEL), KH * KW * C, PANEL], bias [Cout], and num_residual (0 or 1) residuals: shaped as the
// convolution's output [N, OH, OW, Cout] (or [N, Cout]) and added in the same pass, or broadcasting with it as
// TensorFlow's AddV2 does, added after it. Attributes as TensorFlow's Conv2D (strides, padding, explicit_paddings),
// with kernel_size [KH, KW], activation and algorithm: 'winograd' computes a 3 x 3 stride-1 convolution by
// Winograd's F(2x2, 3x3) from a filter packed for it, [16, ceil(Cout / PANEL), C, PANEL] (winograd_convolve).
// Output: the convolution's shape, or the broadcast one.
//
// Every output is one sum over its inputs in filter order, a fused multiply-add at a time from zero (for Winograd's
// algorithm: its tile transforms around such sums); then the bias and the residual are added, each rounding as
// TensorFlow's BiasAdd and AddV2 would. The float operations are the same whichever rows share a call, so an image's
// answer does not depend on its batch, and the AVX-512, AVX2 and portable kernels give bit-identical results. While
// the engine has an idle thread, a helper thread may compute part of a small batch's outputs (lendIdleCore): the same
// operations for each output, so the same bits.
#define OP_NAME "PackedConv2D"
#define EXTRA_EXPORTS conv_exports
#include "tf_op_addon.h"

#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

#define PANEL 32
// Output pixels per block: their inputs' row pointers are built once and shared by every panel.
#define BLOCK_ROWS 96

enum { ACT_NONE, ACT_RELU, ACT_RELU6 };
enum { PAD_VALID, PAD_SAME, PAD_EXPLICIT };

typedef struct {
  int64_t kh, kw, sh, sw;
  int padding;
  int64_t pads[4];  // EXPLICIT: top, bottom, left, right
  int activation;
  int winograd;  // algorithm 'winograd': a 3 x 3 stride-1 convolution in 2 x 2 tiles (winograd_convolve)
} Conv;

// What a kernel adds to its sums and writes: bias (PANEL values), residual (NULL, or rows as the output's),
// activation, and the output rows (row stride ldc).
typedef struct {
  const float *bias;
  const float *residual;
  int act;
  float *c;
  int64_t ldc;
} Epilogue;

// A tile of `MR` output pixels times one panel: rows[s * MR + r] points at the `seglen` inputs of segment s of pixel
// r (a kernel row's KW * C inputs). b: the panel's K x PANEL weights. Writes MR rows of PANEL outputs.
typedef void (*Kernel)(const float *const *rows, int64_t segments, int64_t seglen, const float *b, const Epilogue *e);

static inline float activate(float v, int act) {
  if (act != ACT_NONE && !(v > 0.0f)) v = 0.0f;
  if (act == ACT_RELU6 && v > 6.0f) v = 6.0f;
  return v;
}

// Portable kernel (non-x86, or x86 without AVX2 and FMA): fmaf rounds once, as the vector FMAs do.
#define PORTABLE_MR 4
static void kernel_portable(int mr, const float *const *rows, int64_t segments, int64_t seglen, const float *b,
                            const Epilogue *e) {
  float acc[PORTABLE_MR][PANEL] = {{0}};
  for (int64_t s = 0; s < segments; s++) {
    for (int64_t i = 0; i < seglen; i++, b += PANEL) {
      for (int r = 0; r < mr; r++) {
        const float a = rows[s * mr + r][i];
        for (int j = 0; j < PANEL; j++) acc[r][j] = fmaf(a, b[j], acc[r][j]);
      }
    }
  }
  for (int r = 0; r < mr; r++) {
    for (int j = 0; j < PANEL; j++) {
      float v = acc[r][j] + e->bias[j];
      if (e->residual != NULL) v += e->residual[r * e->ldc + j];
      e->c[r * e->ldc + j] = activate(v, e->act);
    }
  }
}

#define PORTABLE(MR)                                                                                               \
  static void portable_##MR(const float *const *rows, int64_t segments, int64_t seglen, const float *b,          \
                            const Epilogue *e) {                                                                  \
    kernel_portable(MR, rows, segments, seglen, b, e);                                                            \
  }
PORTABLE(1)
PORTABLE(2)
PORTABLE(3)
PORTABLE(4)
static const Kernel portable_kernels[PORTABLE_MR + 1] = {NULL, portable_1, portable_2, portable_3, portable_4};

#if defined(__x86_64__)
#include <immintrin.h>

// Weights are read this many floats (4 KiB) ahead: a batch of one image streams each filter once from memory, and
// the hardware prefetcher alone keeps too few lines in flight (measured: layer4 of ResNet18 1.14 ms instead of 2.05).
#define PREFETCH 1024

// AVX-512: MR rows x 32 columns in 2 * MR accumulators (up to 24 of the 32 registers).
#define AVX512_MR 12
#define AVX512(MR)                                                                                                 \
  __attribute__((target("avx512f"))) static void avx512_##MR(const float *const *rows, int64_t segments,          \
                                                             int64_t seglen, const float *b, const Epilogue *e) {  \
    __m512 acc[MR][2];                                                                                             \
    _Pragma("GCC unroll 12") for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();             \
    for (int64_t s = 0; s < segments; s++) {                                                                       \
      const float *p[MR];                                                                                          \
      _Pragma("GCC unroll 12") for (int r = 0; r < MR; r++) p[r] = rows[s * MR + r];                               \
      for (int64_t i = 0; i < seglen; i++, b += PANEL) {                                                           \
        _mm_prefetch((const char *)(b + PREFETCH), _MM_HINT_T0);                                                   \
        _mm_prefetch((const char *)(b + PREFETCH + 16), _MM_HINT_T0);                                              \
        const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);                                        \
        _Pragma("GCC unroll 12") for (int r = 0; r < MR; r++) {                                                    \
          const __m512 a = _mm512_set1_ps(p[r][i]);                                                                \
          acc[r][0] = _mm512_fmadd_ps(a, b0, acc[r][0]);                                                           \
          acc[r][1] = _mm512_fmadd_ps(a, b1, acc[r][1]);                                                           \
        }                                                                                                          \
      }                                                                                                            \
    }                                                                                                              \
    const __m512 zero = _mm512_setzero_ps(), six = _mm512_set1_ps(6.0f);                                           \
    const __m512 bias0 = _mm512_loadu_ps(e->bias), bias1 = _mm512_loadu_ps(e->bias + 16);                          \
    _Pragma("GCC unroll 12") for (int r = 0; r < MR; r++) {                                                        \
      __m512 v0 = _mm512_add_ps(acc[r][0], bias0), v1 = _mm512_add_ps(acc[r][1], bias1);                          \
      if (e->residual != NULL) {                                                                                   \
        v0 = _mm512_add_ps(v0, _mm512_loadu_ps(e->residual + r * e->ldc));                                         \
        v1 = _mm512_add_ps(v1, _mm512_loadu_ps(e->residual + r * e->ldc + 16));                                    \
      }                                                                                                            \
      if (e->act != ACT_NONE) v0 = _mm512_max_ps(v0, zero), v1 = _mm512_max_ps(v1, zero);                         \
      if (e->act == ACT_RELU6) v0 = _mm512_min_ps(v0, six), v1 = _mm512_min_ps(v1, six);                          \
      _mm512_storeu_ps(e->c + r * e->ldc, v0);                                                                     \
      _mm512_storeu_ps(e->c + r * e->ldc + 16, v1);                                                                \
    }                                                                                                              \
  }
AVX512(1)
AVX512(2)
AVX512(3)
AVX512(4)
AVX512(5)
AVX512(6)
AVX512(7)
AVX512(8)
AVX512(9)
AVX512(10)
AVX512(11)
AVX512(12)
static const Kernel avx512_kernels[AVX512_MR + 1] = {NULL,      avx512_1, avx512_2,  avx512_3,  avx512_4,
                                                     avx512_5,  avx512_6, avx512_7,  avx512_8,  avx512_9,
                                                     avx512_10, avx512_11, avx512_12};

// AVX2: MR rows x 32 columns as two halves of 16, each in 2 * MR accumulators (12 of the 16 registers).
#define AVX2_MR 6
#define AVX2(MR)                                                                                                   \
  __attribute__((target("avx2,fma"))) static void avx2_half_##MR(const float *const *rows, int64_t segments,      \
                                                                 int64_t seglen, const float *b, const Epilogue *e,\
                                                                 int64_t half) {                                   \
    __m256 acc[MR][2];                                                                                             \
    _Pragma("GCC unroll 6") for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();              \
    for (int64_t s = 0; s < segments; s++) {                                                                       \
      const float *p[MR];                                                                                          \
      _Pragma("GCC unroll 6") for (int r = 0; r < MR; r++) p[r] = rows[s * MR + r];                                \
      for (int64_t i = 0; i < seglen; i++, b += PANEL) {                                                           \
        _mm_prefetch((const char *)(b + PREFETCH), _MM_HINT_T0);                                                   \
        const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);                                         \
        _Pragma("GCC unroll 6") for (int r = 0; r < MR; r++) {                                                     \
          const __m256 a = _mm256_broadcast_ss(p[r] + i);                                                          \
          acc[r][0] = _mm256_fmadd_ps(a, b0, acc[r][0]);                                                           \
          acc[r][1] = _mm256_fmadd_ps(a, b1, acc[r][1]);                                                           \
        }                                                                                                          \
      }                                                                                                            \
    }                                                                                                              \
    const __m256 zero = _mm256_setzero_ps(), six = _mm256_set1_ps(6.0f);                                           \
    const __m256 bias0 = _mm256_loadu_ps(e->bias + half), bias1 = _mm256_loadu_ps(e->bias + half + 8);             \
    _Pragma("GCC unroll 6") for (int r = 0; r < MR; r++) {                                                         \
      __m256 v0 = _mm256_add_ps(acc[r][0], bias0), v1 = _mm256_add_ps(acc[r][1], bias1);                          \
      if (e->residual != NULL) {                                                                                   \
        v0 = _mm256_add_ps(v0, _mm256_loadu_ps(e->residual + r * e->ldc + half));                                  \
        v1 = _mm256_add_ps(v1, _mm256_loadu_ps(e->residual + r * e->ldc + half + 8));                              \
      }                                                                                                            \
      if (e->act != ACT_NONE) v0 = _mm256_max_ps(v0, zero), v1 = _mm256_max_ps(v1, zero);                         \
      if (e->act == ACT_RELU6) v0 = _mm256_min_ps(v0, six), v1 = _mm256_min_ps(v1, six);                          \
      _mm256_storeu_ps(e->c + r * e->ldc + half, v0);                                                              \
      _mm256_storeu_ps(e->c + r * e->ldc + half + 8, v1);                                                          \
    }                                                                                                              \
  }                                                                                                                \
  static void avx2_##MR(const float *const *rows, int64_t segments, int64_t seglen, const float *b,               \
                        const Epilogue *e) {                                                                      \
    avx2_half_##MR(rows, segments, seglen, b, e, 0);                                                               \
    avx2_half_##MR(rows, segments, seglen, b + 16, e, 16);                                                         \
  }
AVX2(1)
AVX2(2)
AVX2(3)
AVX2(4)
AVX2(5)
AVX2(6)
static const Kernel avx2_kernels[AVX2_MR + 1] = {NULL, avx2_1, avx2_2, avx2_3, avx2_4, avx2_5, avx2_6};
#endif

typedef struct {
  const char *name;
  const Kernel *kernels;
  int max_rows;
  int vector;  // AVX2 for Winograd's transforms (which give the same bits as the portable ones)
} Isa;

static Isa isa;
static pthread_once_t isa_once = PTHREAD_ONCE_INIT;

// The vector kernels this CPU runs, or none.
static const char *vector_kernels(void) {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx512f")) return "avx512";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "avx2";
#endif
  return NULL;
}

// The best kernels this CPU runs; CONV_KERNELS=avx2 or =portable picks slower ones (to compare them on one machine:
// all give the same bits).
static void choose_isa(void) {
  const char *best = vector_kernels(), *wanted = getenv("CONV_KERNELS");
  const int portable = best == NULL || (wanted != NULL && strcmp(wanted, "portable") == 0);
  isa = (Isa){"portable", portable_kernels, PORTABLE_MR, 0};
#if defined(__x86_64__)
  if (!portable && strcmp(best, "avx512") == 0 && (wanted == NULL || strcmp(wanted, "avx2") != 0)) {
    isa = (Isa){"avx512", avx512_kernels, AVX512_MR, 1};
  } else if (!portable) {
    isa = (Isa){"avx2", avx2_kernels, AVX2_MR, 1};
  }
#endif
}

// A second core for small batches. While the pool's other engine threads have no batch (a lone request), a helper
// thread takes part of each convolution: its work is cut into units (a block of output pixels times a panel, a
// share of a Winograd transform) that the calling thread and the helper take in turn, whichever is free. Each unit
// writes its own outputs with the same float operations as when one thread runs them all, so answers do not change.
// The engine thread that calls the op says, through lendIdleCore, where the pool marks its threads busy or idle.

// After its last unit the helper waits this long for the next op of the session run, then sleeps, so that it does
// not hold the core once the model call is over.
#define HELPER_SPIN_NS 50000
enum { LEADER, HELPER, THREADS };

// `next` has a cache line of its own: the two threads write it, and the caller's stack around it is in use.
typedef struct Task Task;
struct Task {
  _Alignas(64) _Atomic int64_t next;
  _Alignas(64) void (*unit)(const Task *task, int64_t unit, int thread);
  void *args;
  int64_t count;
  uint64_t serial;  // tells tasks apart that the caller's stack places at the same address
};

// Per engine thread (set by lendIdleCore): the pool's engine threads, a slot each (1 while it runs a batch), and
// the largest batch that takes the helper.
static _Thread_local const _Atomic int32_t *engine_slots;
static _Thread_local int64_t engines;
static _Thread_local int64_t lend_max_batch;
static _Atomic int64_t helper_units;  // units the helper has run, for tests and measurements
static _Alignas(64) _Atomic(Task *) offered;  // the task the helper may join, NULL when none
static _Alignas(64) _Atomic(Task *) joined;   // the task the helper is in: its caller waits for it to leave
static _Alignas(64) _Atomic int helper_owned;  // one calling thread at a time
static _Atomic int helper_sleeping;
static uint64_t task_serial;  // written by the thread that owns the helper
static int helper_started;
static pthread_once_t helper_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t helper_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t helper_wake = PTHREAD_COND_INITIALIZER;

static inline void cpu_relax(void) {
#if defined(__x86_64__)
  __builtin_ia32_pause();
#endif
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int64_t take_units(Task *task, int thread) {
  int64_t done = 0;
  for (int64_t u; (u = atomic_fetch_add(&task->next, 1)) < task->count; done++) task->unit(task, u, thread);
  return done;
}

static void *helper_main(void *arg) {
  (void)arg;
  uint64_t last = 0;
  for (;;) {
    uint64_t idle_since = now_ns();
    while (now_ns() - idle_since < HELPER_SPIN_NS) {
      Task *task = atomic_load(&offered);
      if (task == NULL) {
        cpu_relax();
        continue;
      }
      // Announce first, then check the task is still on offer: its caller, having withdrawn it, waits only for a
      // helper it can see in it. A task already worked on is left to its caller to finish.
      atomic_store(&joined, task);
      if (atomic_load(&offered) == task && task->serial != last) {
        last = task->serial;
        atomic_fetch_add(&helper_units, take_units(task, HELPER));
        idle_since = now_ns();
      }
      atomic_store(&joined, NULL);
    }
    pthread_mutex_lock(&helper_lock);
    atomic_store(&helper_sleeping, 1);
    // Woken for a task, or ahead of one (readyHelper); either way it spins again for a while.
    if (atomic_load(&offered) == NULL) pthread_cond_wait(&helper_wake, &helper_lock);
    atomic_store(&helper_sleeping, 0);
    pthread_mutex_unlock(&helper_lock);
  }
  return NULL;
}

static void start_helper(void) {
  pthread_attr_t attr;
  pthread_t thread;
  if (pthread_attr_init(&attr) != 0) return;
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  helper_started = pthread_create(&thread, &attr, helper_main, NULL) == 0;
  pthread_attr_destroy(&attr);
}

// Whether a call of the op in this thread may take the helper: a small batch, and an engine thread of the pool idle.
static int may_lend(int64_t batch) {
  if (engine_slots == NULL || batch > lend_max_batch) return 0;
  int64_t busy = 0;
  for (int64_t i = 0; i < engines; i++) busy += atomic_load(&engine_slots[i]) != 0;
  return busy < engines;
}

// Whether this call of the op takes the helper: it may lend, and the helper is free. The caller gives it back with
// release_helper.
static int claim_helper(int64_t batch) {
  if (!may_lend(batch)) return 0;
  pthread_once(&helper_once, start_helper);
  int free_helper = 0;
  return helper_started && atomic_compare_exchange_strong(&helper_owned, &free_helper, 1);
}

static void release_helper(int claimed) {
  if (claimed) atomic_store(&helper_owned, 0);
}

static void wake_helper(void) {
  if (atomic_load(&helper_sleeping)) {
    pthread_mutex_lock(&helper_lock);
    pthread_cond_signal(&helper_wake);
    pthread_mutex_unlock(&helper_lock);
  }
}

// Runs every unit of `task`: in this thread alone, or with the helper when `helped`; returns once all are done.
static void run_task(Task *task, int helped) {
  if (!helped || task->count < 2) {
    take_units(task, LEADER);
    return;
  }
  task->serial = ++task_serial;
  atomic_store(&offered, task);
  wake_helper();
  take_units(task, LEADER);
  atomic_store(&offered, NULL);
  // Every unit is taken; the helper may still be finishing one.
  for (int spins = 0; atomic_load(&joined) == task; spins++) {
    if (spins < 4096) cpu_relax();
    else sched_yield();
  }
}

// Padding before and after, and the output size, along one axis, as TensorFlow's Conv2D computes them.
static int64_t axis_geometry(const Conv *conv, int axis, int64_t in, int64_t pad[2]) {
  const int64_t k = axis == 0 ? conv->kh : conv->kw, s = axis == 0 ? conv->sh : conv->sw;
  if (conv->padding == PAD_SAME) {
    const int64_t out = (in + s - 1) / s;
    const int64_t total = (out - 1) * s + k - in;
    pad[0] = total > 0 ? total / 2 : 0;
    pad[1] = total > 0 ? total - pad[0] : 0;
    return out;
  }
  pad[0] = conv->padding == PAD_EXPLICIT ? conv->pads[2 * axis] : 0;
  pad[1] = conv->padding == PAD_EXPLICIT ? conv->pads[2 * axis + 1] : 0;
  const int64_t span = in + pad[0] + pad[1] - k;
  return span < 0 ? 0 : span / s + 1;
}

typedef struct {
  const float *x;  // [batch, height, width, channels], already padded
  int64_t batch, height, width, channels, out_h, out_w;
} Geometry;

// The images with their padding written out as zeros, so that every kernel row's KW * C inputs lie side by side.
static float *pad_images(const float *x, int64_t batch, int64_t height, int64_t width, int64_t channels,
                         const int64_t pad_y[2], const int64_t pad_x[2]) {
  const int64_t ph = height + pad_y[0] + pad_y[1], pw = width + pad_x[0] + pad_x[1];
  float *padded = calloc((size_t)(batch * ph * pw * channels), sizeof *padded);
  if (padded == NULL) return NULL;
  for (int64_t n = 0; n < batch; n++) {
    for (int64_t y = 0; y < height; y++) {
      memcpy(padded + ((n * ph + y + pad_y[0]) * pw + pad_x[0]) * channels,
             x + (n * height + y) * width * channels, (size_t)(width * channels) * sizeof *x);
    }
  }
  return padded;
}

// The size of tile t when `count` pixels are cut into `tiles` tiles as even as possible.
static int tile_rows(int64_t count, int64_t tiles, int64_t t) {
  return (int)(count / tiles + (t < count % tiles ? 1 : 0));
}

// Row pointers of output pixels [m0, m0 + count), tile after tile, each segment-major (rows[s * mr + r]): segment
// ky of a pixel is the KW * C inputs of kernel row ky.
static void build_rows(const Conv *conv, const Geometry *g, int64_t m0, int64_t count, int max_rows,
                       const float **rows) {
  const int64_t per_image = g->out_h * g->out_w, tiles = (count + max_rows - 1) / max_rows;
  for (int64_t t = 0, first = 0; t < tiles; t++) {
    const int mr = tile_rows(count, tiles, t);
    const float **tile = rows + first * conv->kh;
    for (int r = 0; r < mr; r++) {
      const int64_t m = m0 + first + r, n = m / per_image, oy = m % per_image / g->out_w, ox = m % g->out_w;
      for (int64_t ky = 0; ky < conv->kh; ky++) {
        tile[ky * mr + r] = g->x + ((n * g->height + oy * conv->sh + ky) * g->width + ox * conv->sw) * g->channels;
      }
    }
    first += mr;
  }
}

// The direct convolution's arguments and each thread's scratch: the row pointers of the block it built last, and
// buffers of PANEL columns for the last panel when Cout is not a multiple of PANEL (its outputs, its residual).
typedef struct {
  const Conv *conv;
  const Geometry *g;
  const float *filter, *bias, *residual;
  float *out;
  int64_t k, out_channels, m_total, panels, edge_cols;
  float edge_bias[PANEL];
  struct {
    const float **rows;
    float *edge;
    int64_t m0;
  } scratch[THREADS];
} Direct;

// Unit u: the output pixels of block u / panels (BLOCK_ROWS of them, fewer in the last) times panel u % panels.
static void direct_unit(const Task *task, int64_t u, int thread) {
  Direct *d = task->args;
  const Conv *conv = d->conv;
  const int64_t m0 = u / d->panels * BLOCK_ROWS, p = u % d->panels, out_channels = d->out_channels;
  const int64_t count = d->m_total - m0 < BLOCK_ROWS ? d->m_total - m0 : BLOCK_ROWS;
  const int64_t tiles = (count + isa.max_rows - 1) / isa.max_rows, segments = conv->kh;
  const int64_t seglen = conv->kw * d->g->channels;
  const float **rows = d->scratch[thread].rows;
  float *edge = d->scratch[thread].edge, *edge_residual = edge + isa.max_rows * PANEL;
  if (d->scratch[thread].m0 != m0) {
    build_rows(conv, d->g, m0, count, isa.max_rows, rows);
    d->scratch[thread].m0 = m0;
  }
  const float *panel = d->filter + p * d->k * PANEL;
  const int full = p < d->panels - 1 || d->edge_cols == PANEL;
  for (int64_t t = 0, first = 0; t < tiles; t++) {
    const int mr = tile_rows(count, tiles, t);
    const int64_t at = (m0 + first) * out_channels + p * PANEL;
    Epilogue e = {d->bias + p * PANEL, d->residual != NULL ? d->residual + at : NULL, conv->activation, d->out + at,
                  out_channels};
    if (!full) {
      if (d->residual != NULL) {
        memset(edge_residual, 0, (size_t)(mr * PANEL) * sizeof *edge_residual);
        for (int r = 0; r < mr; r++) {
          memcpy(edge_residual + r * PANEL, e.residual + r * out_channels, (size_t)d->edge_cols * sizeof *d->out);
        }
        e.residual = edge_residual;
      }
      e.bias = d->edge_bias, e.c = edge, e.ldc = PANEL;
    }
    isa.kernels[mr](rows + first * segments, segments, seglen, panel, &e);
    if (!full) {
      for (int r = 0; r < mr; r++) memcpy(d->out + at + r * out_channels, edge + r * PANEL, (size_t)d->edge_cols * sizeof *d->out);
    }
    first += mr;
  }
}

// Returns an error message, or NULL when the output was written.
static const char *convolve(const Conv *conv, const Geometry *g, const float *filter, int64_t k, const float *bias,
                            const float *residual, int64_t out_channels, float *out, int helped) {
  pthread_once(&isa_once, choose_isa);
  const int64_t m_total = g->batch * g->out_h * g->out_w, panels = (out_channels + PANEL - 1) / PANEL;
  Direct d = {.conv = conv, .g = g, .filter = filter, .bias = bias, .residual = residual, .out = out, .k = k,
              .out_channels = out_channels, .m_total = m_total, .panels = panels,
              .edge_cols = out_channels - (panels - 1) * PANEL};
  memcpy(d.edge_bias, bias + (panels - 1) * PANEL, (size_t)d.edge_cols * sizeof *bias);
  const char *error = NULL;
  const int threads = helped ? THREADS : 1;
  for (int th = 0; th < threads; th++) {
    d.scratch[th].rows = malloc((size_t)(BLOCK_ROWS * conv->kh) * sizeof *d.scratch[th].rows);
    d.scratch[th].edge = malloc((size_t)(2 * isa.max_rows * PANEL) * sizeof *d.scratch[th].edge);
    d.scratch[th].m0 = -1;
    if (d.scratch[th].rows == NULL || d.scratch[th].edge == NULL) error = "out of memory for the convolution's row pointers";
  }
  if (error == NULL) {
    Task task = {.unit = direct_unit, .args = &d, .count = (m_total + BLOCK_ROWS - 1) / BLOCK_ROWS * panels};
    run_task(&task, helped);
  }
  for (int th = 0; th < threads; th++) {
    free(d.scratch[th].rows);
    free(d.scratch[th].edge);
  }
  return error;
}

// Winograd's F(2x2, 3x3): each 2 x 2 tile of outputs from a 4 x 4 patch of inputs with 16 multiplications per input
// and output channel instead of 36. With B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], G = [1 0 0; .5 .5 .5;
// .5 -.5 .5; 0 0 1] and A^T = [1 1 1 0; 0 1 -1 -1], a tile is A^T [(G g G^T) * (B^T d B)] A. The filter's G g G^T
// comes packed from the session graph (packed-conv.ts): [16, panels, C, PANEL]. B^T d B and A^T m A are additions
// only, in a fixed order, and the 16 products per tile are the kernels' sums: so as for the direct path, the bits do
// not depend on the batch or on the kernels the CPU runs.
#define WINOGRAD_TILES 16

// B^T d B of one tile for channels [c, c_count): d[4 * i + j] points at the C inputs of patch row i, column j; the
// result for xi = 4 * i + j goes to out[xi * plane + c].
static void input_tile(const float *const *d, float *out, int64_t plane, int64_t c, int64_t c_count) {
  for (; c < c_count; c++) {
    float r[4][4];
    for (int j = 0; j < 4; j++) {
      r[0][j] = d[j][c] - d[8 + j][c];
      r[1][j] = d[4 + j][c] + d[8 + j][c];
      r[2][j] = d[8 + j][c] - d[4 + j][c];
      r[3][j] = d[4 + j][c] - d[12 + j][c];
    }
    for (int i = 0; i < 4; i++) {
      out[(4 * i + 0) * plane + c] = r[i][0] - r[i][2];
      out[(4 * i + 1) * plane + c] = r[i][1] + r[i][2];
      out[(4 * i + 2) * plane + c] = r[i][2] - r[i][1];
      out[(4 * i + 3) * plane + c] = r[i][1] - r[i][3];
    }
  }
}

// A^T m A of one tile for output channels [co, count), then + bias, + residual and the activation, as the direct
// path's epilogue: in[xi * plane + co] holds product xi; out[k] (NULL past the image) takes output k = 2 * row + column.
static void output_tile(const float *in, int64_t plane, const float *bias, const float *const *residual,
                        float *const *out, int act, int64_t co, int64_t count) {
  for (; co < count; co++) {
    float s0[4], s1[4], y[4];
    for (int j = 0; j < 4; j++) {
      const float m0 = in[j * plane + co], m1 = in[(4 + j) * plane + co], m2 = in[(8 + j) * plane + co],
                  m3 = in[(12 + j) * plane + co];
      s0[j] = m0 + m1 + m2;
      s1[j] = m1 - m2 - m3;
    }
    y[0] = s0[0] + s0[1] + s0[2];
    y[1] = s0[1] - s0[2] - s0[3];
    y[2] = s1[0] + s1[1] + s1[2];
    y[3] = s1[1] - s1[2] - s1[3];
    for (int k = 0; k < 4; k++) {
      if (out[k] == NULL) continue;
      float value = y[k] + bias[co];
      if (residual[k] != NULL) value += residual[k][co];
      out[k][co] = activate(value, act);
    }
  }
}

#if defined(__x86_64__)
// The same sums as input_tile and output_tile, eight channels at a time.
__attribute__((target("avx2"))) static void input_tile_avx2(const float *const *d, float *out, int64_t plane,
                                                            int64_t c_count) {
  int64_t c = 0;
  for (; c + 8 <= c_count; c += 8) {
    __m256 r[4][4];
    for (int j = 0; j < 4; j++) {
      const __m256 a0 = _mm256_loadu_ps(d[j] + c), a1 = _mm256_loadu_ps(d[4 + j] + c),
                   a2 = _mm256_loadu_ps(d[8 + j] + c), a3 = _mm256_loadu_ps(d[12 + j] + c);
      r[0][j] = _mm256_sub_ps(a0, a2);
      r[1][j] = _mm256_add_ps(a1, a2);
      r[2][j] = _mm256_sub_ps(a2, a1);
      r[3][j] = _mm256_sub_ps(a1, a3);
    }
    for (int i = 0; i < 4; i++) {
      _mm256_storeu_ps(out + (4 * i + 0) * plane + c, _mm256_sub_ps(r[i][0], r[i][2]));
      _mm256_storeu_ps(out + (4 * i + 1) * plane + c, _mm256_add_ps(r[i][1], r[i][2]));
      _mm256_storeu_ps(out + (4 * i + 2) * plane + c, _mm256_sub_ps(r[i][2], r[i][1]));
      _mm256_storeu_ps(out + (4 * i + 3) * plane + c, _mm256_sub_ps(r[i][1], r[i][3]));
    }
  }
  input_tile(d, out, plane, c, c_count);
}

__attribute__((target("avx2"))) static void output_tile_avx2(const float *in, int64_t plane, const float *bias,
                                                             const float *const *residual, float *const *out, int act,
                                                             int64_t count) {
  const __m256 zero = _mm256_setzero_ps(), six = _mm256_set1_ps(6.0f);
  int64_t co = 0;
  for (; co + 8 <= count; co += 8) {
    __m256 s0[4], s1[4], y[4];
    for (int j = 0; j < 4; j++) {
      const __m256 m0 = _mm256_loadu_ps(in + j * plane + co), m1 = _mm256_loadu_ps(in + (4 + j) * plane + co),
                   m2 = _mm256_loadu_ps(in + (8 + j) * plane + co), m3 = _mm256_loadu_ps(in + (12 + j) * plane + co);
      s0[j] = _mm256_add_ps(_mm256_add_ps(m0, m1), m2);
      s1[j] = _mm256_sub_ps(_mm256_sub_ps(m1, m2), m3);
    }
    y[0] = _mm256_add_ps(_mm256_add_ps(s0[0], s0[1]), s0[2]);
    y[1] = _mm256_sub_ps(_mm256_sub_ps(s0[1], s0[2]), s0[3]);
    y[2] = _mm256_add_ps(_mm256_add_ps(s1[0], s1[1]), s1[2]);
    y[3] = _mm256_sub_ps(_mm256_sub_ps(s1[1], s1[2]), s1[3]);
    const __m256 b = _mm256_loadu_ps(bias + co);
    for (int k = 0; k < 4; k++) {
      if (out[k] == NULL) continue;
      __m256 value = _mm256_add_ps(y[k], b);
      if (residual[k] != NULL) value = _mm256_add_ps(value, _mm256_loadu_ps(residual[k] + co));
      if (act != ACT_NONE) value = _mm256_max_ps(value, zero);
      if (act == ACT_RELU6) value = _mm256_min_ps(value, six);
      _mm256_storeu_ps(out[k] + co, value);
    }
  }
  output_tile(in, plane, bias, residual, out, act, co, count);
}
#endif

// Image n, tile row ty and tile column tx of tile number `tile` (tiles numbered image by image, row-major).
static void tile_position(int64_t tile, int64_t tiles_h, int64_t tiles_w, int64_t *n, int64_t *ty, int64_t *tx) {
  *n = tile / (tiles_h * tiles_w);
  *ty = tile % (tiles_h * tiles_w) / tiles_w;
  *tx = tile % tiles_w;
}

// A Winograd convolution's arguments, the tile block being computed (tiles [t0, t0 + count)) and each thread's row
// pointers into the transformed inputs of the xi it built last.
typedef struct {
  const Conv *conv;
  const Geometry *g;
  const float *filter, *bias, *residual, *zeros;
  float *out, *v, *m;
  int64_t out_channels, panels, ldm, tiles_h, tiles_w, t0, count, groups;
  struct {
    const float **rows;
    int64_t xi;
  } scratch[THREADS];
} Winograd;

// Tiles per unit of the input and output transforms.
#define TRANSFORM_TILES 8

static int64_t transform_units(const Winograd *w) { return (w->count + TRANSFORM_TILES - 1) / TRANSFORM_TILES; }

// Unit u of the block's inputs, transformed: v[xi][t][c] for xi = 4 * row + column of B^T d B, t the tile within
// the block. The images are padded; positions past them (the last tile of an odd size) read `zeros`.
static void winograd_input(const Task *task, int64_t u, int thread) {
  (void)thread;
  const Winograd *w = task->args;
  const Geometry *g = w->g;
  const int64_t c_count = g->channels, plane = w->count * c_count, end = (u + 1) * TRANSFORM_TILES;
  for (int64_t t = u * TRANSFORM_TILES; t < end && t < w->count; t++) {
    int64_t n, ty, tx;
    tile_position(w->t0 + t, w->tiles_h, w->tiles_w, &n, &ty, &tx);
    const float *d[16];
    for (int i = 0; i < 4; i++) {
      for (int j = 0; j < 4; j++) {
        const int64_t y = 2 * ty + i, x = 2 * tx + j;
        d[4 * i + j] = y < g->height && x < g->width ? g->x + ((n * g->height + y) * g->width + x) * c_count : w->zeros;
      }
    }
#if defined(__x86_64__)
    if (isa.vector) {
      input_tile_avx2(d, w->v + t * c_count, plane, c_count);
      continue;
    }
#endif
    input_tile(d, w->v + t * c_count, plane, 0, c_count);
  }
}

// Unit u = xi * panels + p of the block's products: m[xi][t][co] (row length ldm) for panel p's channels.
static void winograd_products(const Task *task, int64_t u, int thread) {
  Winograd *w = task->args;
  static const float zero_bias[PANEL] = {0};
  const int64_t xi = u / w->panels, p = u % w->panels, channels = w->g->channels, count = w->count;
  const float **rows = w->scratch[thread].rows;
  if (w->scratch[thread].xi != xi) {
    for (int64_t t = 0; t < count; t++) rows[t] = w->v + (xi * count + t) * channels;
    w->scratch[thread].xi = xi;
  }
  const float *panel = w->filter + (xi * w->panels + p) * channels * PANEL;
  for (int64_t group = 0, first = 0; group < w->groups; group++) {
    const int mr = tile_rows(count, w->groups, group);
    Epilogue e = {zero_bias, NULL, ACT_NONE, w->m + (xi * count + first) * w->ldm + p * PANEL, w->ldm};
    isa.kernels[mr](rows + first, 1, channels, panel, &e);
    first += mr;
  }
}

// Unit u of the block's outputs, from its products. Outputs past the image (the last tile of an odd size) are not
// written.
static void winograd_output(const Task *task, int64_t u, int thread) {
  (void)thread;
  const Winograd *w = task->args;
  const Geometry *g = w->g;
  const int64_t out_channels = w->out_channels, ldm = w->ldm, plane = w->count * ldm, end = (u + 1) * TRANSFORM_TILES;
  for (int64_t t = u * TRANSFORM_TILES; t < end && t < w->count; t++) {
    int64_t n, ty, tx;
    tile_position(w->t0 + t, w->tiles_h, w->tiles_w, &n, &ty, &tx);
    float *to[4];
    const float *res[4];
    for (int k = 0; k < 4; k++) {
      const int64_t oy = 2 * ty + k / 2, ox = 2 * tx + k % 2;
      const int64_t at = ((n * g->out_h + oy) * g->out_w + ox) * out_channels;
      const int inside = oy < g->out_h && ox < g->out_w;
      to[k] = inside ? w->out + at : NULL;
      res[k] = inside && w->residual != NULL ? w->residual + at : NULL;
    }
#if defined(__x86_64__)
    if (isa.vector) {
      output_tile_avx2(w->m + t * ldm, plane, w->bias, res, to, w->conv->activation, out_channels);
      continue;
    }
#endif
    output_tile(w->m + t * ldm, plane, w->bias, res, to, w->conv->activation, 0, out_channels);
  }
}

// The convolution by Winograd's F(2x2, 3x3) (conv->winograd): filter [16, panels, C, PANEL]; otherwise as convolve.
static const char *winograd_convolve(const Conv *conv, const Geometry *g, const float *filter, int64_t k,
                                     const float *bias, const float *residual, int64_t out_channels, float *out,
                                     int helped) {
  (void)k;
  pthread_once(&isa_once, choose_isa);
  const int64_t channels = g->channels, panels = (out_channels + PANEL - 1) / PANEL, ldm = panels * PANEL;
  const int64_t tiles_h = (g->out_h + 1) / 2, tiles_w = (g->out_w + 1) / 2, tiles = g->batch * tiles_h * tiles_w;
  // Tiles per block: about 512 KiB of transformed inputs, which the products then read from L2 for every panel.
  int64_t block = 8192 / (channels > ldm ? channels : ldm);
  if (block < isa.max_rows) block = isa.max_rows;
  if (block > tiles) block = tiles;
  Winograd w = {.conv = conv, .g = g, .filter = filter, .bias = bias, .residual = residual, .out = out,
                .out_channels = out_channels, .panels = panels, .ldm = ldm, .tiles_h = tiles_h, .tiles_w = tiles_w};
  float *zeros = calloc((size_t)channels, sizeof *zeros);
  w.zeros = zeros;
  w.v = malloc((size_t)(WINOGRAD_TILES * block * channels) * sizeof *w.v);
  w.m = malloc((size_t)(WINOGRAD_TILES * block * ldm) * sizeof *w.m);
  const int threads = helped ? THREADS : 1;
  int ready = zeros != NULL && w.v != NULL && w.m != NULL;
  for (int th = 0; th < threads; th++) {
    w.scratch[th].rows = malloc((size_t)block * sizeof *w.scratch[th].rows);
    ready = ready && w.scratch[th].rows != NULL;
  }
  if (ready) {
    for (int64_t t0 = 0; t0 < tiles; t0 += block) {
      w.t0 = t0;
      w.count = tiles - t0 < block ? tiles - t0 : block;
      w.groups = (w.count + isa.max_rows - 1) / isa.max_rows;
      for (int th = 0; th < threads; th++) w.scratch[th].xi = -1;
      Task input = {.unit = winograd_input, .args = &w, .count = transform_units(&w)};
      Task products = {.unit = winograd_products, .args = &w, .count = WINOGRAD_TILES * panels};
      Task output = {.unit = winograd_output, .args = &w, .count = transform_units(&w)};
      run_task(&input, helped);
      run_task(&products, helped);
      run_task(&output, helped);
    }
  }
  free(zeros);
  free(w.v);
  free(w.m);
  for (int th = 0; th < threads; th++) free(w.scratch[th].rows);
  return ready ? NULL : "out of memory for the convolution's tiles";
}

// out = activation(conv + residual) with TensorFlow's AddV2 broadcasting, for a residual not shaped as the
// convolution's output: dims (as [N, H, W, C]) of each are either equal or 1, the output's the larger.
static void add_broadcast(const float *conv_out, const int64_t cdims[4], const float *residual, const int64_t rdims[4],
                          const int64_t odims[4], int act, float *out) {
  int64_t cstride[4], rstride[4], c = 1, r = 1;
  for (int d = 3; d >= 0; d--) {
    cstride[d] = cdims[d] == 1 ? 0 : c, rstride[d] = rdims[d] == 1 ? 0 : r;
    c *= cdims[d], r *= rdims[d];
  }
  for (int64_t n = 0; n < odims[0]; n++) {
    for (int64_t y = 0; y < odims[1]; y++) {
      for (int64_t x = 0; x < odims[2]; x++) {
        for (int64_t ch = 0; ch < odims[3]; ch++) {
          const float v = conv_out[n * cstride[0] + y * cstride[1] + x * cstride[2] + ch * cstride[3]] +
                          residual[n * rstride[0] + y * rstride[1] + x * rstride[2] + ch * rstride[3]];
          *out++ = activate(v, act);
        }
      }
    }
  }
}

static void compute(void *kernel, TF_OpKernelContext *ctx) {
  const Conv *conv = kernel;
  TF_Status *status = tf.NewStatus();
  TF_Tensor *held[5] = {NULL};
  float *padded = NULL, *between = NULL;
  char why[256] = "";
  int code = TF_INVALID_ARGUMENT, helped = 0;
  const int inputs = tf.NumInputs(ctx);
  if (inputs > 4) {
    snprintf(why, sizeof why, "at most one residual");
    goto done;
  }
  for (int i = 0; i < inputs; i++) {
    tf.GetInput(ctx, i, &held[i], status);
    if (tf.GetCode(status) != TF_OK) goto done;
  }
  TF_Tensor *images = held[0], *filter = held[1], *bias = held[2], *residual = held[3];
  const int rank = tf.NumDims(images);
  if (tf.TensorType(images) != TF_FLOAT || (rank != 4 && !(rank == 2 && conv->kh == 1 && conv->kw == 1))) {
    snprintf(why, sizeof why, "images must be float32 [batch, height, width, channels] (or [batch, channels] for a 1 x 1 kernel)");
    goto done;
  }
  const int64_t batch = tf.Dim(images, 0), height = rank == 4 ? tf.Dim(images, 1) : 1,
                width = rank == 4 ? tf.Dim(images, 2) : 1, channels = tf.Dim(images, rank - 1),
                k = conv->kh * conv->kw * channels;
  if (tf.TensorType(bias) != TF_FLOAT || tf.NumDims(bias) != 1 || tf.Dim(bias, 0) < 1) {
    snprintf(why, sizeof why, "bias must be float32 [out_channels]");
    goto done;
  }
  const int64_t out_channels = tf.Dim(bias, 0);
  const int64_t panels = (out_channels + PANEL - 1) / PANEL;
  if (conv->winograd && (tf.TensorType(filter) != TF_FLOAT || tf.NumDims(filter) != 4 ||
                         tf.Dim(filter, 0) != WINOGRAD_TILES || tf.Dim(filter, 1) != panels ||
                         tf.Dim(filter, 2) != channels || tf.Dim(filter, 3) != PANEL)) {
    snprintf(why, sizeof why, "filter must be float32 [%d, %lld, %lld, %d] (Winograd panels of %lld inputs)",
             WINOGRAD_TILES, (long long)panels, (long long)channels, PANEL, (long long)channels);
    goto done;
  }
  if (!conv->winograd && (tf.TensorType(filter) != TF_FLOAT || tf.NumDims(filter) != 3 || tf.Dim(filter, 0) != panels ||
                          tf.Dim(filter, 1) != k || tf.Dim(filter, 2) != PANEL)) {
    snprintf(why, sizeof why, "filter must be float32 [%lld, %lld, %d] (panels of %lld x %lld x %lld inputs)",
             (long long)panels, (long long)k, PANEL, (long long)conv->kh, (long long)conv->kw, (long long)channels);
    goto done;
  }
  int64_t pad_y[2], pad_x[2];
  Geometry g = {.x = tf.TensorData(images), .batch = batch, .channels = channels,
                .out_h = axis_geometry(conv, 0, height, pad_y), .out_w = axis_geometry(conv, 1, width, pad_x)};
  g.height = height + pad_y[0] + pad_y[1], g.width = width + pad_x[0] + pad_x[1];
  // The convolution's output [N, OH, OW, Cout] (a matrix product's [N, Cout] as [N, 1, 1, Cout]); a residual of
  // another shape broadcasts with it, as AddV2 would, into the op's output.
  const int64_t cdims[4] = {batch, g.out_h, g.out_w, out_channels};
  int64_t rdims[4] = {1, 1, 1, 1}, odims[4];
  memcpy(odims, cdims, sizeof odims);
  int broadcast = 0;
  if (residual != NULL) {
    const int rrank = tf.NumDims(residual);
    int fits = tf.TensorType(residual) == TF_FLOAT && rrank <= rank;
    for (int i = 0; fits && i < rrank; i++) {
      // Aligned on the right: a matrix's [N, C] sit at dimensions 0 and 3.
      const int d = rank == 4 ? 4 - rrank + i : (rrank == 2 && i == 0 ? 0 : 3);
      rdims[d] = tf.Dim(residual, i);
    }
    for (int d = 0; fits && d < 4; d++) {
      odims[d] = cdims[d] == 1 ? rdims[d] : cdims[d];
      fits = rdims[d] == odims[d] || rdims[d] == 1;
      broadcast |= rdims[d] != cdims[d];
    }
    if (!fits) {
      snprintf(why, sizeof why, "the residual (float32 of rank %d) does not broadcast with the output [%lld, %lld, %lld, %lld]",
               rrank, (long long)cdims[0], (long long)cdims[1], (long long)cdims[2], (long long)cdims[3]);
      goto done;
    }
  }
  const int64_t out_dims[4] = {odims[0], rank == 4 ? odims[1] : odims[3], odims[2], odims[3]};
  const int64_t size = odims[0] * odims[1] * odims[2] * odims[3], conv_size = batch * g.out_h * g.out_w * out_channels;
  TF_Tensor *output = tf.AllocateOutput(ctx, 0, TF_FLOAT, out_dims, rank, (size_t)size * sizeof(float), status);
  if (tf.GetCode(status) != TF_OK) goto done;
  held[4] = output;
  if (conv_size > 0 && (pad_y[0] | pad_y[1] | pad_x[0] | pad_x[1]) != 0) {
    g.x = padded = pad_images(tf.TensorData(images), batch, height, width, channels, pad_y, pad_x);
    if (padded == NULL) {
      code = TF_RESOURCE_EXHAUSTED;
      snprintf(why, sizeof why, "out of memory for the padded images");
      goto done;
    }
  }
  const char *(*run)(const Conv *, const Geometry *, const float *, int64_t, const float *, const float *, int64_t,
                     float *, int) = conv->winograd ? winograd_convolve : convolve;
  helped = claim_helper(batch);
  if (conv_size > 0 && !broadcast) {
    const char *error = run(conv, &g, tf.TensorData(filter), k, tf.TensorData(bias),
                            residual != NULL ? tf.TensorData(residual) : NULL, out_channels, tf.TensorData(output),
                            helped);
    if (error != NULL) code = TF_RESOURCE_EXHAUSTED, snprintf(why, sizeof why, "%s", error);
  } else if (size > 0) {
    // The convolution and its bias first, then the broadcast addition and the activation.
    Conv plain = *conv;
    plain.activation = ACT_NONE;
    between = malloc((size_t)conv_size * sizeof *between);
    const char *error = between == NULL ? "out of memory for the convolution's output"
                                        : run(&plain, &g, tf.TensorData(filter), k, tf.TensorData(bias), NULL,
                                              out_channels, between, helped);
    if (error != NULL) code = TF_RESOURCE_EXHAUSTED, snprintf(why, sizeof why, "%s", error);
    else add_broadcast(between, cdims, tf.TensorData(residual), rdims, odims, conv->activation, tf.TensorData(output));
  }
done:
  release_helper(helped);
  free(padded);
  free(between);
  if (why[0] != '\0') tf.SetStatus(status, code, why);
  if (tf.GetCode(status) != TF_OK) tf.Failure(ctx, status);
  for (int i = 0; i < 5; i++) {
    if (held[i] != NULL) tf.DeleteTensor(held[i]);
  }
  tf.DeleteStatus(status);
}

// Reads a list attribute of exactly `count` ints.
static int int_list(TF_OpKernelConstruction *ctx, const char *name, int64_t *values, int count, TF_Status *status) {
  int32_t size = 0, total = 0;
  tf.GetAttrSize(ctx, name, &size, &total, status);
  if (tf.GetCode(status) != TF_OK) return 0;
  if (size != count) {
    char why[128];
    snprintf(why, sizeof why, "%s: %s needs %d values, has %d", OP_NAME, name, count, (int)size);
    tf.SetStatus(status, TF_INVALID_ARGUMENT, why);
    return 0;
  }
  tf.GetAttrInt64List(ctx, name, values, count, status);
  return tf.GetCode(status) == TF_OK;
}

static void *create(TF_OpKernelConstruction *ctx) {
  Conv *conv = calloc(1, sizeof *conv);
  TF_Status *status = tf.NewStatus();
  int64_t kernel_size[2], strides[4], explicit[8] = {0};
  char padding[16] = "", activation[16] = "", algorithm[16] = "";
  if (conv == NULL) {
    tf.SetStatus(status, TF_RESOURCE_EXHAUSTED, OP_NAME ": out of memory");
    goto done;
  }
  if (!int_list(ctx, "kernel_size", kernel_size, 2, status) || !int_list(ctx, "strides", strides, 4, status)) goto done;
  tf.GetAttrString(ctx, "padding", padding, sizeof padding - 1, status);
  if (tf.GetCode(status) != TF_OK) goto done;
  tf.GetAttrString(ctx, "activation", activation, sizeof activation - 1, status);
  if (tf.GetCode(status) != TF_OK) goto done;
  tf.GetAttrString(ctx, "algorithm", algorithm, sizeof algorithm - 1, status);
  if (tf.GetCode(status) != TF_OK) goto done;
  conv->winograd = strcmp(algorithm, "winograd") == 0;
  conv->padding = strcmp(padding, "SAME") == 0 ? PAD_SAME : strcmp(padding, "VALID") == 0 ? PAD_VALID : PAD_EXPLICIT;
  if (conv->padding == PAD_EXPLICIT && !int_list(ctx, "explicit_paddings", explicit, 8, status)) goto done;
  conv->activation = strcmp(activation, "Relu") == 0 ? ACT_RELU : strcmp(activation, "Relu6") == 0 ? ACT_RELU6 : ACT_NONE;
  conv->kh = kernel_size[0], conv->kw = kernel_size[1], conv->sh = strides[1], conv->sw = strides[2];
  // NHWC explicit paddings: [before, after] per dimension; batch and channels take none.
  for (int i = 0; i < 4; i++) conv->pads[i] = explicit[2 + i];
  if (conv->kh < 1 || conv->kw < 1 || conv->sh < 1 || conv->sw < 1 || strides[0] != 1 || strides[3] != 1 ||
      explicit[0] || explicit[1] || explicit[6] || explicit[7] || conv->pads[0] < 0 || conv->pads[1] < 0 ||
      conv->pads[2] < 0 || conv->pads[3] < 0) {
    tf.SetStatus(status, TF_INVALID_ARGUMENT,
                 OP_NAME ": kernel_size and spatial strides must be positive, paddings spatial and not negative");
  } else if (conv->winograd && (conv->kh != 3 || conv->kw != 3 || conv->sh != 1 || conv->sw != 1)) {
    tf.SetStatus(status, TF_INVALID_ARGUMENT, OP_NAME ": the winograd algorithm takes a 3 x 3 kernel with strides 1");
  }
done:
  if (tf.GetCode(status) != TF_OK) {
    tf.ConstructionFailure(ctx, status);
    free(conv);
    conv = NULL;
  }
  tf.DeleteStatus(status);
  return conv;
}

static void destroy(void *kernel) { free(kernel); }

// vectorKernels(): "avx512" or "avx2", the vector kernels this CPU has, or null (the portable C kernels only).
static napi_value VectorKernels(napi_env env, napi_callback_info info) {
  (void)info;
  const char *name = vector_kernels();
  napi_value value;
  if (name == NULL) napi_get_null(env, &value);
  else napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &value);
  return value;
}

// kernels(): the kernels the op runs in this process ("avx512", "avx2" or "portable", after CONV_KERNELS).
static napi_value Kernels(napi_env env, napi_callback_info info) {
  (void)info;
  pthread_once(&isa_once, choose_isa);
  napi_value value;
  napi_create_string_utf8(env, isa.name, NAPI_AUTO_LENGTH, &value);
  return value;
}

// lendIdleCore(slots, maxBatch): from now on, the op's calls in this thread take the helper thread for batches of
// at most maxBatch images while an engine thread idles: slots (an Int32Array over a SharedArrayBuffer that the
// caller keeps alive) holds a slot per engine thread of the pool, 1 while it runs a batch.
static napi_value LendIdleCore(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  bool typed = false;
  napi_typedarray_type kind;
  size_t length = 0;
  void *data = NULL;
  int64_t max_batch = 0;
  if (argc < 2 || napi_is_typedarray(env, argv[0], &typed) != napi_ok || !typed ||
      napi_get_typedarray_info(env, argv[0], &kind, &length, &data, NULL, NULL) != napi_ok ||
      kind != napi_int32_array || length < 1 || napi_get_value_int64(env, argv[1], &max_batch) != napi_ok ||
      max_batch < 1) {
    napi_throw_type_error(env, NULL, "lendIdleCore(slots, maxBatch): slots must be an Int32Array, maxBatch an integer >= 1");
    return NULL;
  }
  engine_slots = data;
  engines = (int64_t)length;
  lend_max_batch = max_batch;
  return NULL;
}

// readyHelper(batch): wakes the helper ahead of a model call that would take it (lendIdleCore), so that it is awake
// by the first convolution; a sleeping thread takes a while to wake on a virtual machine.
static napi_value ReadyHelper(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int64_t batch = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_int64(env, argv[0], &batch) != napi_ok) {
    napi_throw_type_error(env, NULL, "readyHelper(batch): batch must be an integer");
    return NULL;
  }
  if (may_lend(batch)) {
    pthread_once(&helper_once, start_helper);
    wake_helper();
  }
  return NULL;
}

// helperUnits(): units of work the helper thread has run in this process.
static napi_value HelperUnits(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value value;
  napi_create_int64(env, atomic_load(&helper_units), &value);
  return value;
}

static int conv_exports(napi_env env, napi_value exports) {
  static const struct {
    const char *name;
    napi_callback fn;
  } functions[] = {{"vectorKernels", VectorKernels}, {"kernels", Kernels}, {"lendIdleCore", LendIdleCore}, {"helperUnits", HelperUnits}, {"readyHelper", ReadyHelper}};
  for (size_t i = 0; i < sizeof functions / sizeof functions[0]; i++) {
    napi_value fn;
    if (napi_create_function(env, functions[i].name, NAPI_AUTO_LENGTH, functions[i].fn, NULL, &fn) != napi_ok ||
        napi_set_named_property(env, exports, functions[i].name, fn) != napi_ok) {
      return 0;
    }
  }
  return 1;
}

static void define_op(TF_OpDefinitionBuilder *op) {
  tf.AddInput(op, "images: float");
  tf.AddInput(op, "filter: float");
  tf.AddInput(op, "bias: float");
  tf.AddInput(op, "residual: num_residual * float");
  tf.AddOutput(op, "output: float");
  tf.AddAttr(op, "num_residual: int >= 0 = 0");
  tf.AddAttr(op, "kernel_size: list(int)");
  tf.AddAttr(op, "strides: list(int)");
  tf.AddAttr(op, "padding: {'SAME', 'VALID', 'EXPLICIT'}");
  tf.AddAttr(op, "explicit_paddings: list(int) = []");
  tf.AddAttr(op, "activation: {'None', 'Relu', 'Relu6'} = 'None'");
  tf.AddAttr(op, "algorithm: {'direct', 'winograd'} = 'direct'");
}
