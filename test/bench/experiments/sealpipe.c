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
 * Each side forks per connection; each direction is one thread running
 * seal-pump.h's loop: read up to UNIT_BYTES, seal in place (4-byte length
 * as AAD, 16-byte tag), one write().
 * The key is fixed (no handshake: only the per-byte cost is measured), the
 * nonce is a per-direction counter. Listens on 127.0.0.1; dials only 127.x.
 *
 * Build: cc -O2 -pthread -o sealpipe sealpipe.c -lcrypto
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "seal-pump.h"

static size_t unit;

static void die(const char *what) {
  perror(what);
  _exit(1);
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
      struct pump up = {c, o, front, 1, unit, 0, 0}, down = {o, c, !front, 2, unit, 0, 0};
      pthread_t t1, t2;
      pthread_create(&t1, NULL, seal_pump_run, &up);
      pthread_create(&t2, NULL, seal_pump_run, &down);
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
