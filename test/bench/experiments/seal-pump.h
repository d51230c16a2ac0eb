/*
 * The copy loop shared by sealpipe.c (its own processes) and napi-pump.c
 * (the same loop inside Node, on sockets Node accepted): one thread per
 * direction reads up to `unit` bytes, seals them in place as one
 * AES-128-GCM unit (4-byte length as AAD, 16-byte tag, per-direction
 * counter nonce) and writes it with one write(); the other side reads,
 * opens and writes the plaintext. Works on blocking and non-blocking
 * descriptors (poll() on EAGAIN). A measurement, not a product part.
 */
#ifndef SEAL_PUMP_H
#define SEAL_PUMP_H
#include <arpa/inet.h>
#include <errno.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define TAG 16
#define HDR 4

static const unsigned char KEY[16] = "sealpipe-key-123";

static int wait_fd(int fd, short ev) {
  struct pollfd p = {.fd = fd, .events = ev};
  return poll(&p, 1, -1) < 0 && errno != EINTR ? -1 : 0;
}

static int write_all(int fd, const unsigned char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      if ((errno == EAGAIN || errno == EWOULDBLOCK) && wait_fd(fd, POLLOUT) == 0) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Up to n bytes; 0 at end of input, -1 on error. */
static ssize_t read_some(int fd, unsigned char *p, size_t n) {
  for (;;) {
    ssize_t r = read(fd, p, n);
    if (r >= 0) return r;
    if (errno == EINTR) continue;
    if ((errno == EAGAIN || errno == EWOULDBLOCK) && wait_fd(fd, POLLIN) == 0) continue;
    return -1;
  }
}

static int read_all(int fd, unsigned char *p, size_t n) {
  while (n > 0) {
    ssize_t r = read_some(fd, p, n);
    if (r <= 0) return -1;
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

static void nonce(unsigned char iv[12], uint32_t dir, uint64_t n) {
  memcpy(iv, &dir, 4);
  memcpy(iv + 4, &n, 8);
}

struct pump {
  int in, out;
  int seal; /* 1: plain in, sealed out; 0: sealed in, plain out */
  uint32_t dir;
  size_t unit;
  uint64_t bytes; /* plaintext moved */
  int failed;     /* allocation, cipher or tag failure */
};

static void *seal_pump_run(void *arg) {
  struct pump *p = arg;
  unsigned char *buf = malloc(HDR + p->unit + TAG);
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  unsigned char iv[12];
  uint64_t n = 0;
  int len;
  if (!buf || !ctx) {
    p->failed = 1;
  } else if (p->seal) {
    if (!EVP_EncryptInit_ex(ctx, EVP_aes_128_gcm(), NULL, KEY, NULL)) p->failed = 1;
    while (!p->failed) {
      ssize_t r = read_some(p->in, buf + HDR, p->unit);
      uint32_t l = r > 0 ? (uint32_t)r : 0;
      uint32_t be = htonl(l);
      memcpy(buf, &be, HDR);
      if (l == 0) { /* end of input: an empty unit tells the other side */
        write_all(p->out, buf, HDR);
        break;
      }
      nonce(iv, p->dir, n++);
      EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, iv);
      EVP_EncryptUpdate(ctx, NULL, &len, buf, HDR);
      EVP_EncryptUpdate(ctx, buf + HDR, &len, buf + HDR, (int)l);
      EVP_EncryptFinal_ex(ctx, buf + HDR + l, &len);
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG, buf + HDR + l);
      if (write_all(p->out, buf, HDR + l + TAG) < 0) break;
      p->bytes += l;
    }
  } else {
    if (!EVP_DecryptInit_ex(ctx, EVP_aes_128_gcm(), NULL, KEY, NULL)) p->failed = 1;
    while (!p->failed) {
      uint32_t be, l;
      if (read_all(p->in, buf, HDR) < 0) break;
      memcpy(&be, buf, HDR);
      l = ntohl(be);
      if (l == 0) break;
      if (l > p->unit || read_all(p->in, buf + HDR, l + TAG) < 0) break;
      nonce(iv, p->dir, n++);
      EVP_DecryptInit_ex(ctx, NULL, NULL, NULL, iv);
      EVP_DecryptUpdate(ctx, NULL, &len, buf, HDR);
      EVP_DecryptUpdate(ctx, buf + HDR, &len, buf + HDR, (int)l);
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG, buf + HDR + l);
      if (EVP_DecryptFinal_ex(ctx, buf + HDR + l, &len) <= 0) {
        p->failed = 1; /* bad tag: nothing of this unit is released */
        break;
      }
      if (write_all(p->out, buf + HDR, l) < 0) break;
      p->bytes += l;
    }
  }
  shutdown(p->out, SHUT_WR);
  EVP_CIPHER_CTX_free(ctx);
  free(buf);
  return NULL;
}

#endif
