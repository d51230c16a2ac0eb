/*
 * napi-pump — a measurement, not a product part: seal-pump.h's loop as a
 * Node addon, on sockets Node itself accepted and dialed, to learn whether
 * handing descriptors from libuv to native threads keeps sealpipe's speed
 * inside a Node process (the proposal in docs/native-data-path.md).
 *
 *   pump(plainFd, sealedFd, sealDir, openDir, unitBytes, done)
 *
 * Two threads: plainFd -> seal (nonce direction sealDir) -> sealedFd, and
 * sealedFd -> open (openDir) -> plainFd. JavaScript must have stopped
 * reading both sockets (pauseOnConnect / pause() before the first read) and
 * closes them once done(upBytes, downBytes, failed) is called.
 *
 * Build (no node-gyp: Node's own headers; OpenSSL resolves to Node's):
 *   cc -O2 -shared -fPIC -pthread -I"$(dirname $(dirname $(readlink -f $(which node))))/include/node" \
 *      -o napi_pump.node napi-pump.c
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <pthread.h>

#include "seal-pump.h"

struct job {
  struct pump up, down;
  pthread_t t_up, t_down;
  napi_threadsafe_function done;
};

static void *joiner(void *arg) {
  struct job *j = arg;
  pthread_join(j->t_up, NULL);
  pthread_join(j->t_down, NULL);
  napi_call_threadsafe_function(j->done, j, napi_tsfn_blocking);
  napi_release_threadsafe_function(j->done, napi_tsfn_release);
  return NULL;
}

static void call_done(napi_env env, napi_value cb, void *ctx, void *data) {
  struct job *j = data;
  (void)ctx;
  if (env != NULL && cb != NULL) {
    napi_value argv[3], undef;
    napi_create_double(env, (double)j->up.bytes, &argv[0]);
    napi_create_double(env, (double)j->down.bytes, &argv[1]);
    napi_get_boolean(env, j->up.failed || j->down.failed, &argv[2]);
    napi_get_undefined(env, &undef);
    napi_call_function(env, undef, cb, 3, argv, NULL);
  }
  free(j);
}

static napi_value pump(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6], name;
  int32_t plain, sealed, seal_dir, open_dir, unit;
  pthread_t t;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc != 6 || napi_get_value_int32(env, argv[0], &plain) != napi_ok || napi_get_value_int32(env, argv[1], &sealed) != napi_ok ||
      napi_get_value_int32(env, argv[2], &seal_dir) != napi_ok || napi_get_value_int32(env, argv[3], &open_dir) != napi_ok ||
      napi_get_value_int32(env, argv[4], &unit) != napi_ok || unit < 1024 || unit > (16 << 20)) {
    napi_throw_type_error(env, NULL, "pump(plainFd, sealedFd, sealDir, openDir, unitBytes, done)");
    return NULL;
  }
  struct job *j = calloc(1, sizeof *j);
  if (j == NULL) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  j->up = (struct pump){plain, sealed, 1, (uint32_t)seal_dir, (size_t)unit, 0, 0};
  j->down = (struct pump){sealed, plain, 0, (uint32_t)open_dir, (size_t)unit, 0, 0};
  napi_create_string_utf8(env, "seal-pump", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[5], NULL, name, 0, 1, NULL, NULL, NULL, call_done, &j->done) != napi_ok) {
    free(j);
    napi_throw_error(env, NULL, "cannot create the completion callback");
    return NULL;
  }
  pthread_create(&j->t_up, NULL, seal_pump_run, &j->up);
  pthread_create(&j->t_down, NULL, seal_pump_run, &j->down);
  pthread_create(&t, NULL, joiner, j);
  pthread_detach(t);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "pump", NAPI_AUTO_LENGTH, pump, NULL, &fn);
  napi_set_named_property(env, exports, "pump", fn);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
