/*
 * sealpipe — a measurement, not a product part: the data path the
 * performance note proposes (a native copy loop sealing large units with
 * AES-128-GCM), in the bench's topology, to learn what it would move on this
 * machine before anyone writes the N-API version.
 *
 *   client -> front (plain TCP in) ==sealed units over TCP==> back -> service
 *
 *   sealpipe front LISTEN_PORT BACK_HOST BACK_PORT UNIT_BYTES
 *   sealpipe back  LISTEN_PORT SERVICE_HOST SERVICE_PORT UNIT_BYTES
 *
 * Each side forks per connection; each direction is one thread: read up to
 * UNIT_BYTES, seal in place (4-byte length as AAD, 16-byte tag), one write().
 * The key is fixed (no handshake: only the per-byte cost is measured), the
 * nonce is a per-direction counter. Listens on 127.0.0.1; dials only 127.x.
 *
 * Build: cc -O2 -pthread -o sealpipe sealpipe.c -lcrypto
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define TAG 16
#define HDR 4

static size_t unit;
static const unsigned char KEY[16] = "sealpipe-key-123";

static void die(const char *what) {
  perror(what);
  _exit(1);
}

static int write_all(int fd, const unsigned char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static int read_all(int fd, unsigned char *p, size_t n) {
  while (n > 0) {
    ssize_t r = read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
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
  uint64_t bytes; /* plaintext moved */
};

static void *run(void *arg) {
  struct pump *p = arg;
  unsigned char *buf = malloc(HDR + unit + TAG);
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  unsigned char iv[12];
  uint64_t n = 0;
  int len;
  if (!buf || !ctx) die("alloc");
  if (p->seal) {
    if (!EVP_EncryptInit_ex(ctx, EVP_aes_128_gcm(), NULL, KEY, NULL)) die("init");
    for (;;) {
      ssize_t r = read(p->in, buf + HDR, unit);
      if (r < 0 && errno == EINTR) continue;
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
    shutdown(p->out, SHUT_WR);
  } else {
    if (!EVP_DecryptInit_ex(ctx, EVP_aes_128_gcm(), NULL, KEY, NULL)) die("init");
    for (;;) {
      uint32_t be, l;
      if (read_all(p->in, buf, HDR) < 0) break;
      memcpy(&be, buf, HDR);
      l = ntohl(be);
      if (l == 0) break;
      if (l > unit || read_all(p->in, buf + HDR, l + TAG) < 0) break;
      nonce(iv, p->dir, n++);
      EVP_DecryptInit_ex(ctx, NULL, NULL, NULL, iv);
      EVP_DecryptUpdate(ctx, NULL, &len, buf, HDR);
      EVP_DecryptUpdate(ctx, buf + HDR, &len, buf + HDR, (int)l);
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG, buf + HDR + l);
      if (EVP_DecryptFinal_ex(ctx, buf + HDR + l, &len) <= 0) {
        fprintf(stderr, "sealpipe: bad tag\n");
        break;
      }
      if (write_all(p->out, buf + HDR, l) < 0) break;
      p->bytes += l;
    }
    shutdown(p->out, SHUT_WR);
  }
  EVP_CIPHER_CTX_free(ctx);
  free(buf);
  return NULL;
}

static struct in_addr next_host;

static int dial(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr = next_host};
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) die("connect");
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: sealpipe front|back LISTEN_PORT NEXT_HOST NEXT_PORT UNIT_BYTES\n");
    return 2;
  }
  int front = strcmp(argv[1], "front") == 0;
  int port = atoi(argv[2]), next = atoi(argv[4]), one = 1;
  if (inet_pton(AF_INET, argv[3], &next_host) != 1 || (ntohl(next_host.s_addr) >> 24) != 127) {
    fprintf(stderr, "sealpipe: NEXT_HOST must be a 127.x address\n");
    return 2;
  }
  unit = (size_t)atol(argv[5]);
  if (unit < 1024 || unit > (16u << 20)) {
    fprintf(stderr, "sealpipe: UNIT_BYTES between 1024 and 16 MiB\n");
    return 2;
  }
  signal(SIGCHLD, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 128) < 0) die("listen");
  for (;;) {
    int c = accept(ls, NULL, NULL);
    if (c < 0) {
      if (errno == EINTR) continue;
      die("accept");
    }
    if (fork() == 0) {
      close(ls);
      setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      int o = dial(next);
      /* front: c is plain (client), o is sealed (back). back: c is sealed (front), o is plain (service). */
      struct pump up = {c, o, front, 1, 0}, down = {o, c, !front, 2, 0};
      pthread_t t1, t2;
      pthread_create(&t1, NULL, run, &up);
      pthread_create(&t2, NULL, run, &down);
      pthread_join(t1, NULL);
      pthread_join(t2, NULL);
      /* One line per connection: what it moved and the CPU it took (all threads). */
      struct rusage ru;
      getrusage(RUSAGE_SELF, &ru);
      fprintf(stderr, "sealpipe %s: up %llu down %llu bytes, cpu %.3f s\n", argv[1], (unsigned long long)up.bytes, (unsigned long long)down.bytes,
              ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
      _exit(0);
    }
    close(c);
  }
}
