// What a TensorFlow op addon shares (resample.c, conv.c): TensorFlow's C kernel API, looked up at run time in the
// libtensorflow_framework.so.2 this process has already loaded (the CPU or the GPU binding's), so one build serves
// both bindings and links against neither; and the Node-API module whose register() adds the op once per process.
//
// The declarations are the subset of TensorFlow's stable C API (tensorflow/c/kernels.h, ops.h, tf_status.h,
// tf_tensor.h) the ops use; the opaque types stay opaque. Each addon is one translation unit that includes this file
// once and defines define_op() (the op's inputs, outputs and attributes) and its kernel's create, compute, destroy.
#ifndef TF_OP_ADDON_H
#define TF_OP_ADDON_H

#include <dlfcn.h>
#include <node_api.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct TF_Status TF_Status;
typedef struct TF_Tensor TF_Tensor;
typedef struct TF_OpKernelContext TF_OpKernelContext;
typedef struct TF_OpKernelConstruction TF_OpKernelConstruction;
typedef struct TF_KernelBuilder TF_KernelBuilder;
typedef struct TF_OpDefinitionBuilder TF_OpDefinitionBuilder;
typedef struct TF_ShapeInferenceContext TF_ShapeInferenceContext;
typedef struct TF_Graph TF_Graph;
typedef struct TF_Buffer TF_Buffer;

enum { TF_FLOAT = 1, TF_INT32 = 3, TF_UINT8 = 4 };
enum { TF_OK = 0, TF_INVALID_ARGUMENT = 3, TF_RESOURCE_EXHAUSTED = 8 };

static struct {
  TF_Status *(*NewStatus)(void);
  void (*DeleteStatus)(TF_Status *);
  int (*GetCode)(const TF_Status *);
  const char *(*Message)(const TF_Status *);
  void (*SetStatus)(TF_Status *, int, const char *);
  int (*NumInputs)(TF_OpKernelContext *);
  void (*GetInput)(TF_OpKernelContext *, int, TF_Tensor **, TF_Status *);
  TF_Tensor *(*AllocateOutput)(TF_OpKernelContext *, int, int, const int64_t *, int, size_t, TF_Status *);
  void (*Failure)(TF_OpKernelContext *, TF_Status *);
  void (*ConstructionFailure)(TF_OpKernelConstruction *, TF_Status *);
  void (*GetAttrSize)(TF_OpKernelConstruction *, const char *, int32_t *, int32_t *, TF_Status *);
  void (*GetAttrInt64List)(TF_OpKernelConstruction *, const char *, int64_t *, int, TF_Status *);
  void (*GetAttrString)(TF_OpKernelConstruction *, const char *, char *, size_t, TF_Status *);
  int (*TensorType)(const TF_Tensor *);
  int (*NumDims)(const TF_Tensor *);
  int64_t (*Dim)(const TF_Tensor *, int);
  void *(*TensorData)(const TF_Tensor *);
  void (*DeleteTensor)(TF_Tensor *);
  TF_KernelBuilder *(*NewKernelBuilder)(const char *, const char *, void *(*)(TF_OpKernelConstruction *),
                                        void (*)(void *, TF_OpKernelContext *), void (*)(void *));
  void (*RegisterKernelBuilder)(const char *, TF_KernelBuilder *, TF_Status *);
  TF_OpDefinitionBuilder *(*NewOpDefinitionBuilder)(const char *);
  void (*AddInput)(TF_OpDefinitionBuilder *, const char *);
  void (*AddOutput)(TF_OpDefinitionBuilder *, const char *);
  void (*AddAttr)(TF_OpDefinitionBuilder *, const char *);
  void (*SetShapeInferenceFunction)(TF_OpDefinitionBuilder *, void (*)(TF_ShapeInferenceContext *, TF_Status *));
  void (*SetUnknownShape)(TF_ShapeInferenceContext *, TF_Status *);
  void (*RegisterOpDefinition)(TF_OpDefinitionBuilder *, TF_Status *);
  TF_Buffer *(*NewBuffer)(void);
  void (*DeleteBuffer)(TF_Buffer *);
  TF_Graph *(*NewGraph)(void);
  void (*DeleteGraph)(TF_Graph *);
  void (*GraphGetOpDef)(TF_Graph *, const char *, TF_Buffer *, TF_Status *);
} tf;

// Defined by the including addon: OP_NAME's inputs, outputs and attributes, and its CPU kernel's functions.
static void define_op(TF_OpDefinitionBuilder *op);
static void *create(TF_OpKernelConstruction *ctx);
static void compute(void *kernel, TF_OpKernelContext *ctx);
static void destroy(void *kernel);

// The output's shape is left to the kernel: the session graph needs no static shapes after the ops.
static void unknown_shape(TF_ShapeInferenceContext *ctx, TF_Status *status) { tf.SetUnknownShape(ctx, status); }
#ifdef EXTRA_EXPORTS
// Defined by an addon that defines EXTRA_EXPORTS: adds its own functions to the module's exports (0 on failure).
static int EXTRA_EXPORTS(napi_env env, napi_value exports);
#endif

// Set once per library by register_op; read by every Node environment (the main thread and each worker). The library
// is linked with -z nodelete: TensorFlow keeps pointers to its kernel, so it must outlive the worker that loaded it.
static pthread_once_t once = PTHREAD_ONCE_INIT;
static char failure[512];

#define LOOKUP(lib, field, symbol)                                                                              \
  if ((*(void **)&tf.field = dlsym(lib, symbol)) == NULL) {                                                     \
    snprintf(failure, sizeof failure, "TensorFlow's C API lacks %s", symbol);                                   \
    return;                                                                                                     \
  }

// Whether the op is in TensorFlow's registry already (a second copy of the addon, loaded from another path, put it
// there): registering a name twice aborts the process.
static int already_registered(TF_Status *status) {
  TF_Graph *graph = tf.NewGraph();
  TF_Buffer *def = tf.NewBuffer();
  tf.GraphGetOpDef(graph, OP_NAME, def, status);
  const int found = tf.GetCode(status) == TF_OK;
  tf.DeleteBuffer(def);
  tf.DeleteGraph(graph);
  tf.SetStatus(status, TF_OK, "");
  return found;
}

static void register_op(void) {
  // RTLD_NOLOAD: only the TensorFlow a binding has already loaded; the sonames name it whatever its path.
  void *framework = dlopen("libtensorflow_framework.so.2", RTLD_NOW | RTLD_NOLOAD);
  void *api = dlopen("libtensorflow_cc.so.2", RTLD_NOW | RTLD_NOLOAD);
  if (framework == NULL || api == NULL) {
    snprintf(failure, sizeof failure, "TensorFlow is not loaded in this process: load the binding first");
    return;
  }
  LOOKUP(framework, NewStatus, "TF_NewStatus")
  LOOKUP(framework, DeleteStatus, "TF_DeleteStatus")
  LOOKUP(framework, GetCode, "TF_GetCode")
  LOOKUP(framework, Message, "TF_Message")
  LOOKUP(framework, SetStatus, "TF_SetStatus")
  LOOKUP(framework, NumInputs, "TF_NumInputs")
  LOOKUP(framework, GetInput, "TF_GetInput")
  LOOKUP(framework, AllocateOutput, "TF_AllocateOutput")
  LOOKUP(framework, Failure, "TF_OpKernelContext_Failure")
  LOOKUP(framework, ConstructionFailure, "TF_OpKernelConstruction_Failure")
  LOOKUP(framework, GetAttrSize, "TF_OpKernelConstruction_GetAttrSize")
  LOOKUP(framework, GetAttrInt64List, "TF_OpKernelConstruction_GetAttrInt64List")
  LOOKUP(framework, GetAttrString, "TF_OpKernelConstruction_GetAttrString")
  LOOKUP(framework, TensorType, "TF_TensorType")
  LOOKUP(framework, NumDims, "TF_NumDims")
  LOOKUP(framework, Dim, "TF_Dim")
  LOOKUP(framework, TensorData, "TF_TensorData")
  LOOKUP(framework, DeleteTensor, "TF_DeleteTensor")
  LOOKUP(framework, NewKernelBuilder, "TF_NewKernelBuilder")
  LOOKUP(framework, RegisterKernelBuilder, "TF_RegisterKernelBuilder")
  LOOKUP(framework, NewOpDefinitionBuilder, "TF_NewOpDefinitionBuilder")
  LOOKUP(framework, AddInput, "TF_OpDefinitionBuilderAddInput")
  LOOKUP(framework, AddOutput, "TF_OpDefinitionBuilderAddOutput")
  LOOKUP(framework, AddAttr, "TF_OpDefinitionBuilderAddAttr")
  LOOKUP(framework, SetShapeInferenceFunction, "TF_OpDefinitionBuilderSetShapeInferenceFunction")
  LOOKUP(framework, SetUnknownShape, "TF_ShapeInferenceContextSetUnknownShape")
  LOOKUP(framework, RegisterOpDefinition, "TF_RegisterOpDefinition")
  LOOKUP(framework, NewBuffer, "TF_NewBuffer")
  LOOKUP(framework, DeleteBuffer, "TF_DeleteBuffer")
  LOOKUP(api, NewGraph, "TF_NewGraph")
  LOOKUP(api, DeleteGraph, "TF_DeleteGraph")
  LOOKUP(api, GraphGetOpDef, "TF_GraphGetOpDef")

  TF_Status *status = tf.NewStatus();
  if (!already_registered(status)) {
    TF_OpDefinitionBuilder *op = tf.NewOpDefinitionBuilder(OP_NAME);
    define_op(op);
    tf.SetShapeInferenceFunction(op, unknown_shape);
    tf.RegisterOpDefinition(op, status);
    if (tf.GetCode(status) == TF_OK) {
      tf.RegisterKernelBuilder(OP_NAME "Cpu", tf.NewKernelBuilder(OP_NAME, "CPU", create, compute, destroy), status);
    }
    if (tf.GetCode(status) != TF_OK) snprintf(failure, sizeof failure, "registering %s failed: %s", OP_NAME, tf.Message(status));
  }
  tf.DeleteStatus(status);
}

// register(): makes the op available to this process's TensorFlow (once) and returns its name.
static napi_value Register(napi_env env, napi_callback_info info) {
  (void)info;
  pthread_once(&once, register_op);
  if (failure[0] != '\0') {
    napi_throw_error(env, NULL, failure);
    return NULL;
  }
  napi_value name;
  napi_create_string_utf8(env, OP_NAME, NAPI_AUTO_LENGTH, &name);
  return name;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "register", NAPI_AUTO_LENGTH, Register, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "register", fn) != napi_ok) return NULL;
#ifdef EXTRA_EXPORTS
  if (!EXTRA_EXPORTS(env, exports)) return NULL;
#endif
  return exports;
}

#endif
