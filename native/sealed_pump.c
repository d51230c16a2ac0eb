/*
 * Portico's sealed data path (docs/native-data-path.md): one native thread
 * per process moves the bytes of "pairs" — a plain TCP socket (a public
 * client on the relay, the app on the agent) joined to a sealed data
 * connection between relay and agent.
 *
 *   plain --read--> seal (AES-128-GCM unit) --write--> sealed   ("up")
 *   sealed --read--> open, verify tag --write--> plain          ("down")
 *
 * A unit on the data connection: 4-byte big-endian word (bit 31: FIN, bits
 * 0..30: payload length, at most UNIT_MAX) as additional authenticated
 * data, the ciphertext, a 16-byte tag. The nonce is the direction's 4-byte
 * prefix followed by a 64-bit big-endian counter; keys and prefixes are
 * per pair and per direction (derived by the caller from the TLS session),
 * so a nonce is never reused. A FIN unit (no payload) ends a direction: a
 * data connection that ends without one was cut (truncation), and the pair
 * fails. Plaintext is written only after its tag verified.
 *
 * JavaScript (shared/sealed/engine.ts) keeps its sockets open but never
 * reads them after handing over; the engine works on dup()ed descriptors,
 * so a socket JavaScript destroys early cannot make the engine touch a
 * reused descriptor number. A failed pair is closed with a reset (SO_LINGER
 * 0), a finished one cleanly; either way JavaScript is told once:
 *   onDone(id, upBytes, downBytes, code)   code: '' (clean) or a reason.
 *
 * Threading: add()/abort() (JavaScript thread) queue commands and wake the
 * engine through an eventfd; only the engine thread touches a pair's state
 * until it is finished; its memory is freed on the JavaScript thread after
 * onDone ran. Sockets are edge-triggered in epoll; a pair that used its
 * per-turn budget stays on the ready list (fairness between pairs).
 *
 * Datagram pairs (addUdp): the plain side is a connected UDP socket (a
 * client flow on the relay, sharing the public port with SO_REUSEPORT; the
 * agent's socket to the app). A unit's plaintext is then whole datagrams,
 * each a 2-byte big-endian length and its payload; nothing ends a datagram
 * pair but abort(). A datagram the kernel will not take (the app is gone,
 * its buffer is full) is dropped and counted, as UDP would; a data
 * connection that cannot take more makes the engine stop reading the UDP
 * socket, so the kernel drops there instead of memory growing here.
 *
 * Build: scripts/build-native.mjs (the system compiler, Node's own headers;
 * OpenSSL's symbols resolve to the ones Node exports).
 */
#define _GNU_SOURCE /* sendmmsg */
#define NAPI_VERSION 8
#include <node_api.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define HDR 4
#define TAG 16
#define FIN_BIT 0x80000000u
#define UNIT_MAX (1u << 20)
#define UNITS_PER_TURN 4
/* Datagram pairs: a datagram's length prefix, the largest payload, and how many one unit takes at most. */
#define DGRAM_HDR 2
#define DGRAM_MAX 65535
#define DGRAMS_PER_UNIT 256
#define SEND_BATCH 64

enum { UP = 0, DOWN = 1 };
enum state { ACTIVE, FINISHED };

struct dir {
  int in, out;
  unsigned char *buf; /* HDR + unit + TAG */
  size_t off, len;    /* pending output: buf[off, len) (up: the sealed unit; down: plaintext at buf + HDR) */
  size_t have;        /* down: bytes in buf: the current unit's first bytes, maybe the next units' */
  size_t consumed;    /* down: length of the opened unit whose plaintext is being written (0: none) */
  int parsed;         /* down: the current unit's word has been read */
  int unit_fin;       /* down: the current unit carries FIN */
  uint32_t ulen;      /* down: payload length of the current unit */
  int eof;            /* up: plain input ended */
  int fin;            /* up: FIN unit queued; down: FIN unit received */
  int done;
  EVP_CIPHER_CTX *ctx;
  unsigned char prefix[4];
  uint64_t counter;
  uint64_t bytes; /* plaintext moved (datagram pairs: payload bytes, without the length prefixes) */
  uint64_t dgrams; /* datagram pairs: datagrams moved */
};

struct pair {
  uint32_t id;
  int plain, sealed;
  size_t unit;
  int udp;        /* a datagram pair: plain is a connected UDP socket */
  size_t gso_max; /* datagram pairs: the largest datagram a run of equal ones may be made of (0: no offload) */
  uint64_t drops; /* datagram pairs: datagrams the kernel refused on the UDP socket (dropped) */
  struct dir d[2];
  const unsigned char *pre; /* down: bytes JavaScript read off the data connection before handing over */
  size_t pre_len, pre_off;
  unsigned char *pre_buf;
  double *counters; /* JavaScript's Float64Array: up, down bytes (datagram pairs, 5: + up, down datagrams, drops) */
  napi_ref counters_ref;
  enum state state;
  const char *code;
  int ready;
  int abort_requested;
  struct pair *next_active, *prev_active;
  struct pair *next_ready;
  struct pair *next_cmd;
  struct pair *next_done;
};

struct engine {
  int epfd, evfd;
  pthread_t thread;
  int running;
  pthread_mutex_t mu;
  struct pair *adds;    /* queued by add(), guarded by mu */
  uint32_t *aborts;     /* queued ids, guarded by mu */
  size_t n_aborts, cap_aborts;
  int stop;             /* guarded by mu */
  struct pair *active;  /* engine thread only */
  struct pair *ready;   /* engine thread only */
  napi_threadsafe_function done;
  uint32_t live;        /* JavaScript thread: pairs added and not yet reported */
};

static struct engine E = {.epfd = -1, .evfd = -1};

/* ---------------------------------------------------------------- sealing */

static void nonce(unsigned char iv[12], const unsigned char prefix[4], uint64_t n) {
  memcpy(iv, prefix, 4);
  for (int i = 0; i < 8; i++) iv[4 + i] = (unsigned char)(n >> (56 - 8 * i));
}

static int seal_unit(struct dir *d, uint32_t len, uint32_t flags) {
  unsigned char iv[12];
  uint32_t word = htonl(len | flags);
  int n;
  memcpy(d->buf, &word, HDR);
  nonce(iv, d->prefix, d->counter++);
  if (!EVP_EncryptInit_ex(d->ctx, NULL, NULL, NULL, iv) || !EVP_EncryptUpdate(d->ctx, NULL, &n, d->buf, HDR)) return -1;
  if (len > 0 && !EVP_EncryptUpdate(d->ctx, d->buf + HDR, &n, d->buf + HDR, (int)len)) return -1;
  if (!EVP_EncryptFinal_ex(d->ctx, d->buf + HDR + len, &n)) return -1;
  if (!EVP_CIPHER_CTX_ctrl(d->ctx, EVP_CTRL_GCM_GET_TAG, TAG, d->buf + HDR + len)) return -1;
  d->off = 0;
  d->len = HDR + len + TAG;
  return 0;
}

static int open_unit(struct dir *d) {
  unsigned char iv[12];
  int n;
  nonce(iv, d->prefix, d->counter++);
  if (!EVP_DecryptInit_ex(d->ctx, NULL, NULL, NULL, iv) || !EVP_DecryptUpdate(d->ctx, NULL, &n, d->buf, HDR)) return -1;
  if (d->ulen > 0 && !EVP_DecryptUpdate(d->ctx, d->buf + HDR, &n, d->buf + HDR, (int)d->ulen)) return -1;
  if (!EVP_CIPHER_CTX_ctrl(d->ctx, EVP_CTRL_GCM_SET_TAG, TAG, d->buf + HDR + d->ulen)) return -1;
  return EVP_DecryptFinal_ex(d->ctx, d->buf + HDR + d->ulen, &n) > 0 ? 0 : -1;
}

/* ------------------------------------------------------------ the pumping */

/*
 * A direction's buffer exists only while it has bytes in flight: an idle
 * pair (an SSH session waiting for a key press) holds no unit buffers.
 */
static int ensure_buf(struct pair *p, struct dir *d) {
  if (d->buf == NULL) d->buf = malloc(HDR + p->unit + TAG);
  return d->buf != NULL ? 0 : -1;
}

static void release_buf(struct dir *d) {
  free(d->buf);
  d->buf = NULL;
}

/* ------------------------------------------------------ datagram pairs */

/*
 * Up, datagrams: reads whole datagrams off the UDP socket into the unit's
 * plaintext (each behind its 2-byte length) until the socket is empty
 * (*drained), the unit could not hold a largest datagram more, or
 * DGRAMS_PER_UNIT. Returns the plaintext length (0: nothing came). While a
 * unit is being sent nothing is read, so a data connection that cannot
 * keep up leaves the datagrams to the kernel's buffer (and its drops).
 */
static int read_datagrams(struct pair *p, struct dir *d, int *drained) {
  size_t fill = 0;
  int n = 0, errs = 0;
  while (n < DGRAMS_PER_UNIT && fill + DGRAM_HDR + DGRAM_MAX <= p->unit) {
    unsigned char *at = d->buf + HDR + fill;
    ssize_t r = recv(d->in, at + DGRAM_HDR, DGRAM_MAX, MSG_DONTWAIT);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK || ++errs > 8) {
        *drained = 1;
        break;
      }
      continue; /* an ICMP error reported on the socket (nothing listening there now): UDP goes on */
    }
    at[0] = (unsigned char)(r >> 8);
    at[1] = (unsigned char)r;
    fill += DGRAM_HDR + (size_t)r;
    d->bytes += (uint64_t)r;
    d->dgrams++;
    n++;
  }
  return (int)fill;
}

/*
 * Down, datagrams: the opened unit's plaintext is sent with sendmmsg, up to
 * SEND_BATCH messages and SEND_IOVS datagrams a call. Where the kernel takes
 * UDP segmentation offload (UDP_SEGMENT, Linux 4.18+), a run of datagrams of
 * one size (the last of a run may be shorter) goes as one message the kernel
 * cuts into those same datagrams: one pass down the stack instead of one per
 * datagram, and the receiver still reads them one by one. A message the
 * kernel refuses with an error is dropped and its datagrams counted (after
 * one retry when the error was an earlier datagram's ECONNREFUSED); an
 * error that says offload is not possible here turns it off for the pair and
 * the same datagrams go again singly. A full send buffer (EAGAIN) waits for
 * EPOLLOUT. Returns 1 when the unit is out, 0 when blocked, -1 on a malformed
 * unit.
 */
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#define SEND_IOVS 256
#define GSO_SEGS 64       /* the kernel's UDP_MAX_SEGMENTS before 6.x raised it */
#define GSO_BYTES 61440   /* one message's payload, well inside an IPv4 or IPv6 datagram */
static int gso_allowed = 1; /* PORTICO_UDP_GSO=0 turns it off (set once at init) */
/* Engine-wide, read by udpOffload(): segmented messages sent, pairs that fell back after a refusal,
   pairs that started without offload (the kernel or the route has none). */
static uint64_t gso_sent, gso_fallbacks, gso_unavailable;

/*
 * The largest datagram a run may be made of on a connected UDP socket, 0 for
 * none: the kernel must know UDP_SEGMENT (a kernel that does not would
 * ignore the option and send a run as one datagram, so it is asked first),
 * and it refuses a segment larger than the route's MTU allows.
 */
static size_t gso_limit(int fd) {
  int v, mtu;
  socklen_t l = sizeof v;
  if (getsockopt(fd, IPPROTO_UDP, UDP_SEGMENT, &v, &l) != 0) return 0;
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) return 0;
  l = sizeof mtu;
  if (ss.ss_family == AF_INET6) return getsockopt(fd, IPPROTO_IPV6, IPV6_MTU, &mtu, &l) == 0 && mtu > 48 ? (size_t)mtu - 48 : 0;
  return getsockopt(fd, IPPROTO_IP, IP_MTU, &mtu, &l) == 0 && mtu > 28 ? (size_t)mtu - 28 : 0;
}

static int flush_datagrams(struct pair *p, struct dir *d) {
  unsigned char *pt = d->buf + HDR;
  int retried = 0; /* a refusal reported for an earlier datagram: the message at hand was not tried yet */
  while (d->off < d->len) {
    struct mmsghdr msgs[SEND_BATCH];
    struct iovec iov[SEND_IOVS];
    union {
      char buf[CMSG_SPACE(sizeof(uint16_t))];
      struct cmsghdr align;
    } ctl[SEND_BATCH];
    size_t span[SEND_BATCH], bytes[SEND_BATCH];
    unsigned cnt[SEND_BATCH];
    unsigned k = 0, ni = 0;
    size_t at = d->off;
    while (k < SEND_BATCH && ni < SEND_IOVS && at < d->len) {
      if (d->len - at < DGRAM_HDR) return -1;
      size_t n = ((size_t)pt[at] << 8) | pt[at + 1];
      if (d->len - at - DGRAM_HDR < n) return -1;
      struct mmsghdr *m = &msgs[k];
      memset(m, 0, sizeof *m);
      m->msg_hdr.msg_iov = &iov[ni];
      size_t start = at, total = n;
      unsigned c = 1;
      iov[ni].iov_base = pt + at + DGRAM_HDR;
      iov[ni++].iov_len = n;
      at += DGRAM_HDR + n;
      if (n > 0 && n <= p->gso_max) {
        while (c < GSO_SEGS && ni < SEND_IOVS && d->len - at >= DGRAM_HDR) {
          size_t m2 = ((size_t)pt[at] << 8) | pt[at + 1];
          if (d->len - at - DGRAM_HDR < m2 || m2 == 0 || m2 > n || total + m2 > GSO_BYTES) break;
          iov[ni].iov_base = pt + at + DGRAM_HDR;
          iov[ni++].iov_len = m2;
          at += DGRAM_HDR + m2;
          total += m2;
          c++;
          if (m2 < n) break; /* only a run's last datagram may be shorter */
        }
      }
      m->msg_hdr.msg_iovlen = c;
      if (c > 1) {
        m->msg_hdr.msg_control = ctl[k].buf;
        m->msg_hdr.msg_controllen = sizeof ctl[k].buf;
        struct cmsghdr *cm = CMSG_FIRSTHDR(&m->msg_hdr);
        cm->cmsg_level = IPPROTO_UDP;
        cm->cmsg_type = UDP_SEGMENT;
        cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        uint16_t seg = (uint16_t)n;
        memcpy(CMSG_DATA(cm), &seg, sizeof seg);
      }
      span[k] = at - start;
      bytes[k] = total;
      cnt[k] = c;
      k++;
    }
    int sent = sendmmsg(d->out, msgs, k, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (sent < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
      if (cnt[0] > 1 && (errno == EINVAL || errno == EIO || errno == EMSGSIZE || errno == ENOPROTOOPT || errno == EOPNOTSUPP)) {
        p->gso_max = 0; /* no offload on this route: the same datagrams again, one by one */
        __atomic_add_fetch(&gso_fallbacks, 1, __ATOMIC_RELAXED);
        continue;
      }
      /* ECONNREFUSED reports an ICMP error an earlier datagram got (and clears it): try once more */
      if (errno == ECONNREFUSED && !retried) {
        retried = 1;
        continue;
      }
      /* the first message was refused (ENOBUFS, the app still gone, ...): drop its datagrams, go on */
      p->drops += cnt[0];
      d->off += span[0];
      retried = 0;
      continue;
    }
    retried = 0;
    uint64_t segmented = 0;
    for (int i = 0; i < sent; i++) {
      d->off += span[i];
      d->bytes += bytes[i];
      d->dgrams += cnt[i];
      segmented += cnt[i] > 1;
    }
    if (segmented) __atomic_add_fetch(&gso_sent, segmented, __ATOMIC_RELAXED);
  }
  return 1;
}

/* ------------------------------------------------------ the two directions */

/* 0: blocked or done; 1: budget used, more to do; -1: failed (p->code set). */
static int step_up(struct pair *p) {
  struct dir *d = &p->d[UP];
  int drained = 0; /* datagram pairs: the unit being sent emptied the socket; once it is out, wait for EPOLLIN */
  for (int units = 0; units < UNITS_PER_TURN;) {
    if (d->off < d->len) {
      ssize_t w = send(d->out, d->buf + d->off, d->len - d->off, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
        p->code = "DATA_CONNECTION_FAILED";
        return -1;
      }
      d->off += (size_t)w;
      if (d->off < d->len) continue;
      if (d->fin) {
        d->done = 1;
        return 0;
      }
      if (drained) return 0;
      units++;
      continue;
    }
    if (d->done) return 0;
    if (ensure_buf(p, d) < 0) {
      p->code = "OUT_OF_MEMORY";
      return -1;
    }
    if (p->udp) {
      size_t fill = (size_t)read_datagrams(p, d, &drained);
      if (fill == 0) {
        release_buf(d); /* nothing in flight */
        return 0;
      }
      if (seal_unit(d, (uint32_t)fill, 0) < 0) {
        p->code = "CIPHER_FAILED";
        return -1;
      }
      continue;
    }
    if (d->eof) {
      if (seal_unit(d, 0, FIN_BIT) < 0) {
        p->code = "CIPHER_FAILED";
        return -1;
      }
      d->fin = 1;
      continue;
    }
    ssize_t r = recv(d->in, d->buf + HDR, p->unit, MSG_DONTWAIT);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        release_buf(d); /* nothing in flight */
        return 0;
      }
      p->code = "PLAIN_SOCKET_FAILED";
      return -1;
    }
    if (r == 0) {
      d->eof = 1;
      continue;
    }
    if (seal_unit(d, (uint32_t)r, 0) < 0) {
      p->code = "CIPHER_FAILED";
      return -1;
    }
    d->bytes += (uint64_t)r;
  }
  return 1;
}

static ssize_t read_sealed(struct pair *p, unsigned char *to, size_t n) {
  if (p->pre_off < p->pre_len) {
    size_t k = p->pre_len - p->pre_off;
    if (k > n) k = n;
    memcpy(to, p->pre + p->pre_off, k);
    p->pre_off += k;
    return (ssize_t)k;
  }
  return recv(p->d[DOWN].in, to, n, MSG_DONTWAIT);
}

/*
 * The first read of a unit asks for up to FIRST_READ bytes, so a small unit
 * (a request, a key press) arrives with its header in one read() instead of
 * two; what it brings of the next units stays in the buffer. The rest of a
 * large unit is read exactly, so bulk data is never moved twice.
 */
#define FIRST_READ (HDR + 16384 + TAG)

static int step_down(struct pair *p) {
  struct dir *d = &p->d[DOWN];
  for (int units = 0; units < UNITS_PER_TURN;) {
    if (d->off < d->len && p->udp) {
      int f = flush_datagrams(p, d);
      if (f < 0) {
        p->code = "PROTOCOL_ERROR";
        return -1;
      }
      if (f == 0) return 0;
    } else if (d->off < d->len) {
      ssize_t w = send(d->out, d->buf + HDR + d->off, d->len - d->off, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
        p->code = "PLAIN_SOCKET_FAILED";
        return -1;
      }
      d->off += (size_t)w;
      continue;
    }
    if (d->consumed > 0) { /* the opened unit is out: keep only what follows it */
      size_t rest = d->have - d->consumed;
      if (rest > 0) memmove(d->buf, d->buf + d->consumed, rest);
      d->have = rest;
      d->consumed = 0;
      d->parsed = 0;
      d->off = d->len = 0;
    }
    if (d->done) return 0;
    if (d->fin) {
      shutdown(d->out, SHUT_WR);
      d->done = 1;
      return 0;
    }
    if (!d->parsed && d->have >= HDR) {
      uint32_t word;
      memcpy(&word, d->buf, HDR);
      word = ntohl(word);
      d->ulen = word & ~FIN_BIT;
      d->unit_fin = (word & FIN_BIT) != 0;
      /* Our sender never seals an empty unit without FIN: refusing them keeps every unit counted
         against the per-turn budget (a peer could otherwise keep the engine thread to itself).
         A datagram pair's units are never empty and never end it. */
      if (d->ulen > p->unit || (p->udp ? d->ulen == 0 || d->unit_fin : d->unit_fin != (d->ulen == 0))) {
        p->code = "PROTOCOL_ERROR";
        return -1;
      }
      d->parsed = 1;
    }
    if (d->parsed && d->have >= HDR + d->ulen + TAG) {
      if (open_unit(d) < 0) {
        p->code = "BAD_TAG";
        return -1;
      }
      units++;
      d->consumed = HDR + d->ulen + TAG;
      if (d->unit_fin) {
        if (d->have > d->consumed || p->pre_off < p->pre_len) { /* nothing may follow a FIN */
          p->code = "PROTOCOL_ERROR";
          return -1;
        }
        d->fin = 1;
      } else {
        d->off = 0;
        d->len = d->ulen;
        if (!p->udp) d->bytes += d->ulen; /* (datagrams count as they are sent) */
      }
      continue;
    }
    if (ensure_buf(p, d) < 0) {
      p->code = "OUT_OF_MEMORY";
      return -1;
    }
    size_t want = d->parsed ? HDR + d->ulen + TAG - d->have : FIRST_READ;
    if (want > HDR + p->unit + TAG - d->have) want = HDR + p->unit + TAG - d->have;
    ssize_t r = read_sealed(p, d->buf + d->have, want);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (d->have == 0) release_buf(d); /* between units: nothing in flight */
        return 0;
      }
      p->code = "DATA_CONNECTION_FAILED";
      return -1;
    }
    if (r == 0) {
      p->code = "TRUNCATED"; /* the data connection ended without a FIN unit (a datagram pair's never has one) */
      return -1;
    }
    d->have += (size_t)r;
  }
  return 1;
}

static void publish(struct pair *p) {
  double up = (double)p->d[UP].bytes, down = (double)p->d[DOWN].bytes;
  uint64_t bu, bd;
  memcpy(&bu, &up, 8);
  memcpy(&bd, &down, 8);
  __atomic_store_n((uint64_t *)&p->counters[0], bu, __ATOMIC_RELAXED);
  __atomic_store_n((uint64_t *)&p->counters[1], bd, __ATOMIC_RELAXED);
  if (p->udp) {
    double extra[3] = {(double)p->d[UP].dgrams, (double)p->d[DOWN].dgrams, (double)p->drops};
    for (int i = 0; i < 3; i++) {
      uint64_t b;
      memcpy(&b, &extra[i], 8);
      __atomic_store_n((uint64_t *)&p->counters[2 + i], b, __ATOMIC_RELAXED);
    }
  }
}

static void finish(struct pair *p, struct pair **done_list) {
  if (p->state == FINISHED) return;
  p->state = FINISHED;
  epoll_ctl(E.epfd, EPOLL_CTL_DEL, p->plain, NULL);
  epoll_ctl(E.epfd, EPOLL_CTL_DEL, p->sealed, NULL);
  if (p->code != NULL) {
    /* A reset, not a clean end, once the last descriptor (JavaScript's) closes. */
    struct linger l = {1, 0};
    setsockopt(p->plain, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    setsockopt(p->sealed, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  }
  close(p->plain);
  close(p->sealed);
  publish(p);
  if (p->prev_active) p->prev_active->next_active = p->next_active;
  else E.active = p->next_active;
  if (p->next_active) p->next_active->prev_active = p->prev_active;
  p->next_done = *done_list;
  *done_list = p;
}

static void step(struct pair *p, struct pair **done_list) {
  if (p->state != ACTIVE) return;
  int up = p->d[UP].done ? 0 : step_up(p);
  int down = up < 0 || p->d[DOWN].done ? 0 : step_down(p);
  publish(p);
  if (up < 0 || down < 0 || (p->d[UP].done && p->d[DOWN].done)) {
    finish(p, done_list);
    return;
  }
  if ((up > 0 || down > 0) && !p->ready) {
    p->ready = 1;
    p->next_ready = E.ready;
    E.ready = p;
  }
}

static void mark_ready(struct pair *p) {
  if (p->state != ACTIVE || p->ready) return;
  p->ready = 1;
  p->next_ready = E.ready;
  E.ready = p;
}

static void start_pair(struct pair *p, struct pair **done_list) {
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = p};
  p->next_active = E.active;
  p->prev_active = NULL;
  if (E.active) E.active->prev_active = p;
  E.active = p;
  if (epoll_ctl(E.epfd, EPOLL_CTL_ADD, p->plain, &ev) < 0 || epoll_ctl(E.epfd, EPOLL_CTL_ADD, p->sealed, &ev) < 0) {
    p->code = "ENGINE_FAILED";
    finish(p, done_list);
    return;
  }
  mark_ready(p);
}

static int cmp_id(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static void *engine_main(void *arg) {
  (void)arg;
  struct epoll_event evs[64];
  for (;;) {
    int n = epoll_wait(E.epfd, evs, 64, E.ready ? 0 : -1);
    if (n < 0 && errno != EINTR) break;
    struct pair *done_list = NULL;
    int stop = 0;
    for (int i = 0; i < n; i++) {
      if (evs[i].data.ptr == NULL) {
        uint64_t v;
        if (read(E.evfd, &v, sizeof v) < 0) { /* nothing pending */
        }
        pthread_mutex_lock(&E.mu);
        struct pair *adds = E.adds;
        E.adds = NULL;
        size_t na = E.n_aborts;
        uint32_t *aborts = NULL;
        if (na > 0) {
          aborts = malloc(na * sizeof *aborts);
          if (aborts) memcpy(aborts, E.aborts, na * sizeof *aborts);
        }
        E.n_aborts = 0;
        stop = E.stop;
        pthread_mutex_unlock(&E.mu);
        /* adds were pushed newest first; start them oldest first */
        struct pair *rev = NULL;
        while (adds) {
          struct pair *next = adds->next_cmd;
          adds->next_cmd = rev;
          rev = adds;
          adds = next;
        }
        for (struct pair *p = rev, *next; p; p = next) {
          next = p->next_cmd;
          start_pair(p, &done_list);
        }
        if (aborts) {
          /* One pass over the active pairs however many aborts came at once (an agent that went
             away with thousands of connections), each looked up in the sorted ids. */
          qsort(aborts, na, sizeof *aborts, cmp_id);
          for (struct pair *p = E.active, *next; p; p = next) {
            next = p->next_active;
            if (bsearch(&p->id, aborts, na, sizeof *aborts, cmp_id) != NULL) {
              p->code = "ABORTED";
              finish(p, &done_list);
            }
          }
        }
        free(aborts);
      } else {
        mark_ready((struct pair *)evs[i].data.ptr);
      }
    }
    if (stop) {
      while (E.active) {
        E.active->code = "ABORTED";
        finish(E.active, &done_list);
      }
    }
    struct pair *ready = E.ready;
    E.ready = NULL;
    while (ready) {
      struct pair *p = ready;
      ready = p->next_ready;
      p->ready = 0;
      step(p, &done_list);
    }
    while (done_list) {
      struct pair *p = done_list;
      done_list = p->next_done;
      napi_call_threadsafe_function(E.done, p, napi_tsfn_blocking);
    }
    if (stop) break;
  }
  return NULL;
}

/* ------------------------------------------------------- JavaScript side */

static void free_pair(struct pair *p) {
  for (int i = 0; i < 2; i++) {
    if (p->d[i].ctx) EVP_CIPHER_CTX_free(p->d[i].ctx);
    free(p->d[i].buf);
  }
  free(p->pre_buf);
  free(p);
}

static void call_done(napi_env env, napi_value cb, void *ctx, void *data) {
  struct pair *p = data;
  (void)ctx;
  if (env != NULL && cb != NULL) {
    napi_value argv[4], undef;
    napi_create_uint32(env, p->id, &argv[0]);
    napi_create_double(env, (double)p->d[UP].bytes, &argv[1]);
    napi_create_double(env, (double)p->d[DOWN].bytes, &argv[2]);
    napi_create_string_utf8(env, p->code ? p->code : "", NAPI_AUTO_LENGTH, &argv[3]);
    napi_get_undefined(env, &undef);
    if (p->counters_ref) napi_delete_reference(env, p->counters_ref);
    p->counters_ref = NULL;
    if (E.live > 0 && --E.live == 0) napi_unref_threadsafe_function(env, E.done);
    napi_call_function(env, undef, cb, 4, argv, NULL);
  }
  free_pair(p);
}

static void stop_engine(void *arg) {
  (void)arg;
  if (!E.running) return;
  uint64_t one = 1;
  pthread_mutex_lock(&E.mu);
  E.stop = 1;
  pthread_mutex_unlock(&E.mu);
  if (write(E.evfd, &one, sizeof one) < 0) { /* the thread is gone already */
  }
  pthread_join(E.thread, NULL);
  E.running = 0;
}

static napi_value fail(napi_env env, const char *msg) {
  napi_throw_error(env, "ERR_SEALED_PUMP", msg);
  return NULL;
}

/* init(onDone): once per process. */
static napi_value js_init(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], name;
  napi_valuetype t;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc != 1 || napi_typeof(env, argv[0], &t) != napi_ok || t != napi_function) return fail(env, "init(onDone)");
  if (E.running) return fail(env, "the sealed pump is already running in this process");
  napi_create_string_utf8(env, "portico-sealed-pump", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[0], NULL, name, 0, 1, NULL, NULL, NULL, call_done, &E.done) != napi_ok) return fail(env, "cannot create the completion callback");
  napi_unref_threadsafe_function(env, E.done);
  {
    const char *g = getenv("PORTICO_UDP_GSO");
    gso_allowed = !(g && strcmp(g, "0") == 0);
  }
  E.epfd = epoll_create1(EPOLL_CLOEXEC);
  E.evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (E.epfd < 0 || E.evfd < 0) return fail(env, "cannot create the engine's epoll or eventfd");
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  if (epoll_ctl(E.epfd, EPOLL_CTL_ADD, E.evfd, &ev) < 0) return fail(env, "cannot watch the engine's eventfd");
  pthread_mutex_init(&E.mu, NULL);
  if (pthread_create(&E.thread, NULL, engine_main, NULL) != 0) return fail(env, "cannot start the engine thread");
  E.running = 1;
  napi_add_env_cleanup_hook(env, stop_engine, NULL);
  return NULL;
}

static int get_bytes(napi_env env, napi_value v, size_t want, const unsigned char **out) {
  bool is;
  void *data;
  size_t len;
  if (napi_is_buffer(env, v, &is) != napi_ok || !is) return -1;
  if (napi_get_buffer_info(env, v, &data, &len) != napi_ok || len != want) return -1;
  *out = data;
  return 0;
}

/*
 * add(id, plainFd, sealedFd, upKey16, upPrefix4, downKey16, downPrefix4, unitBytes, preload|null, counters)
 * "up" seals plain -> sealed, "down" opens sealed -> plain.
 */
static napi_value add_pair(napi_env env, napi_callback_info info, int udp) {
  size_t argc = 10;
  napi_value argv[10];
  uint32_t id;
  int32_t plain, sealed, unit;
  const unsigned char *keys[2], *prefixes[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (!E.running) return fail(env, "init() first");
  if (argc != 10 || napi_get_value_uint32(env, argv[0], &id) != napi_ok || napi_get_value_int32(env, argv[1], &plain) != napi_ok ||
      napi_get_value_int32(env, argv[2], &sealed) != napi_ok || get_bytes(env, argv[3], 16, &keys[UP]) < 0 || get_bytes(env, argv[4], 4, &prefixes[UP]) < 0 ||
      get_bytes(env, argv[5], 16, &keys[DOWN]) < 0 || get_bytes(env, argv[6], 4, &prefixes[DOWN]) < 0 || napi_get_value_int32(env, argv[7], &unit) != napi_ok ||
      unit < 1024 || (uint32_t)unit > UNIT_MAX || plain < 0 || sealed < 0)
    return fail(env, "add(id, plainFd, sealedFd, upKey(16), upPrefix(4), downKey(16), downPrefix(4), unitBytes 1024..1 MiB, preload|null, Float64Array(2))");
  bool is_ta;
  napi_typedarray_type tat;
  size_t tlen;
  void *tdata;
  if (napi_is_typedarray(env, argv[9], &is_ta) != napi_ok || !is_ta ||
      napi_get_typedarray_info(env, argv[9], &tat, &tlen, &tdata, NULL, NULL) != napi_ok || tat != napi_float64_array || tlen != (udp ? 5u : 2u))
    return fail(env, udp ? "counters must be a Float64Array(5)" : "counters must be a Float64Array(2)");
  if (udp && (uint32_t)unit < DGRAM_HDR + DGRAM_MAX) return fail(env, "a datagram pair's unit must hold a largest datagram (65,537 bytes)");
  struct pair *p = calloc(1, sizeof *p);
  if (!p) return fail(env, "out of memory");
  p->id = id;
  p->udp = udp;
  p->unit = (size_t)unit;
  p->counters = tdata;
  p->plain = -1;
  p->sealed = -1;
  napi_valuetype pt;
  napi_typeof(env, argv[8], &pt);
  if (pt != napi_null && pt != napi_undefined) {
    bool isb;
    void *data;
    size_t len;
    if (napi_is_buffer(env, argv[8], &isb) != napi_ok || !isb || napi_get_buffer_info(env, argv[8], &data, &len) != napi_ok) {
      free_pair(p);
      return fail(env, "preload must be a Buffer or null");
    }
    if (len > 0) {
      p->pre_buf = malloc(len);
      if (!p->pre_buf) {
        free_pair(p);
        return fail(env, "out of memory");
      }
      memcpy(p->pre_buf, data, len);
      p->pre = p->pre_buf;
      p->pre_len = len;
    }
  }
  for (int i = 0; i < 2; i++) {
    struct dir *d = &p->d[i];
    d->ctx = EVP_CIPHER_CTX_new();
    memcpy(d->prefix, prefixes[i], 4);
    int ok = d->ctx &&
             (i == UP ? EVP_EncryptInit_ex(d->ctx, EVP_aes_128_gcm(), NULL, keys[i], NULL) : EVP_DecryptInit_ex(d->ctx, EVP_aes_128_gcm(), NULL, keys[i], NULL));
    if (!ok) {
      free_pair(p);
      return fail(env, "cannot set up AES-128-GCM");
    }
  }
  p->plain = fcntl(plain, F_DUPFD_CLOEXEC, 0);
  p->sealed = fcntl(sealed, F_DUPFD_CLOEXEC, 0);
  if (p->plain < 0 || p->sealed < 0) {
    if (p->plain >= 0) close(p->plain);
    if (p->sealed >= 0) close(p->sealed);
    free_pair(p);
    return fail(env, "cannot take over the sockets (dup failed)");
  }
  if (udp && gso_allowed) {
    p->gso_max = gso_limit(p->plain);
    if (p->gso_max == 0) __atomic_add_fetch(&gso_unavailable, 1, __ATOMIC_RELAXED);
  }
  /* Every recv() and send() passes MSG_DONTWAIT: no fcntl() to make the copies non-blocking. */
  p->d[UP].in = p->plain;
  p->d[UP].out = p->sealed;
  p->d[DOWN].in = p->sealed;
  p->d[DOWN].out = p->plain;
  napi_create_reference(env, argv[9], 1, &p->counters_ref);
  if (E.live++ == 0) napi_ref_threadsafe_function(env, E.done);
  uint64_t one = 1;
  pthread_mutex_lock(&E.mu);
  p->next_cmd = E.adds;
  E.adds = p;
  pthread_mutex_unlock(&E.mu);
  if (write(E.evfd, &one, sizeof one) < 0) { /* counter saturated: the engine is awake anyway */
  }
  return NULL;
}

static napi_value js_add(napi_env env, napi_callback_info info) {
  return add_pair(env, info, 0);
}

/*
 * addUdp(id, udpFd, sealedFd, ...the same as add..., Float64Array(5)): a
 * datagram pair (the plain side a connected UDP socket). Counters: up and
 * down payload bytes, up and down datagrams, datagrams dropped.
 */
static napi_value js_add_udp(napi_env env, napi_callback_info info) {
  return add_pair(env, info, 1);
}

static int parse_addr(int v6, const char *host, int port, struct sockaddr_storage *ss, socklen_t *len) {
  memset(ss, 0, sizeof *ss);
  if (v6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    *len = sizeof *a;
    return inet_pton(AF_INET6, host, &a->sin6_addr) == 1 ? 0 : -1;
  }
  struct sockaddr_in *a = (struct sockaddr_in *)ss;
  a->sin_family = AF_INET;
  a->sin_port = htons((uint16_t)port);
  *len = sizeof *a;
  return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -1;
}

/*
 * udpSocket(v6, bindHost, bindPort, connectHost|null, connectPort, bufferBytes):
 * a non-blocking UDP socket with SO_REUSEPORT, bound, and connected when
 * connectHost is given; its descriptor, or -errno. The relay binds its
 * public UDP ports this way (node:dgram then wraps the descriptor), so a
 * busy flow can get a socket of its own on the same port, connected to the
 * client: the kernel hands a connected socket its peer's datagrams, and
 * every other client's still reach the public socket (SO_REUSEPORT only
 * lets sockets of the same user share a port).
 */
static napi_value js_udp_socket(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6], v;
  bool v6;
  int32_t bport, cport, bufsz;
  char bhost[64], chost[64];
  size_t n;
  napi_valuetype ct;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc != 6 || napi_get_value_bool(env, argv[0], &v6) != napi_ok || napi_get_value_string_utf8(env, argv[1], bhost, sizeof bhost, &n) != napi_ok ||
      napi_get_value_int32(env, argv[2], &bport) != napi_ok || napi_typeof(env, argv[3], &ct) != napi_ok ||
      (ct != napi_null && napi_get_value_string_utf8(env, argv[3], chost, sizeof chost, &n) != napi_ok) || napi_get_value_int32(env, argv[4], &cport) != napi_ok ||
      napi_get_value_int32(env, argv[5], &bufsz) != napi_ok || bport < 0 || bport > 65535 || cport < 0 || cport > 65535)
    return fail(env, "udpSocket(v6, bindHost, bindPort, connectHost|null, connectPort, bufferBytes)");
  struct sockaddr_storage ss;
  socklen_t len;
  int r = 0, one = 1;
  int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) r = -errno;
  else if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) r = -errno;
  else if (parse_addr(v6, bhost, bport, &ss, &len) < 0) r = -EINVAL;
  else if (bind(fd, (struct sockaddr *)&ss, len) < 0) r = -errno;
  else if (ct != napi_null && parse_addr(v6, chost, cport, &ss, &len) < 0) r = -EINVAL;
  else if (ct != napi_null && connect(fd, (struct sockaddr *)&ss, len) < 0) r = -errno;
  if (r == 0 && bufsz > 0) { /* capped by net.core.[rw]mem_max; a refusal keeps the defaults */
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof bufsz);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof bufsz);
  }
  if (r < 0 && fd >= 0) close(fd);
  napi_create_int32(env, r < 0 ? r : fd, &v);
  return v;
}

/*
 * udpDrain(fd): the datagrams queued on a socket udpSocket() just made, as
 * [payload, address, port] triples (at most 1,024), read and removed.
 * Between its bind() and its connect() a socket is an unconnected member
 * of the port's SO_REUSEPORT group, and the kernel may have handed it any
 * client's datagram; the caller routes these as if they had reached the
 * public socket. After connect() only its own peer's arrive.
 */
static napi_value js_udp_drain(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  int32_t fd;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc != 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) return fail(env, "udpDrain(fd)");
  napi_create_array(env, &out);
  unsigned char *buf = malloc(DGRAM_MAX);
  if (!buf) return fail(env, "out of memory");
  for (uint32_t n = 0; n < 1024;) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    ssize_t r = recvfrom(fd, buf, DGRAM_MAX, MSG_DONTWAIT, (struct sockaddr *)&ss, &sl);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      continue; /* a queued ICMP error: nothing to route */
    }
    char host[INET6_ADDRSTRLEN];
    int port;
    if (ss.ss_family == AF_INET6) {
      struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
      inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
      port = ntohs(a->sin6_port);
    } else {
      struct sockaddr_in *a = (struct sockaddr_in *)&ss;
      inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
      port = ntohs(a->sin_port);
    }
    napi_value triple, data, addr, p;
    void *copy;
    napi_create_buffer_copy(env, (size_t)r, buf, &copy, &data);
    napi_create_string_utf8(env, host, NAPI_AUTO_LENGTH, &addr);
    napi_create_int32(env, port, &p);
    napi_create_array_with_length(env, 3, &triple);
    napi_set_element(env, triple, 0, data);
    napi_set_element(env, triple, 1, addr);
    napi_set_element(env, triple, 2, p);
    napi_set_element(env, out, n++, triple);
  }
  free(buf);
  return out;
}

/* closeFd(fd): closes a descriptor udpSocket() made once the engine holds its own copy. */
static napi_value js_close_fd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc != 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) return fail(env, "closeFd(fd)");
  close(fd);
  return NULL;
}

/* udpOffload(): [segmented messages sent, pairs that fell back to single datagrams, pairs without offload], since the process started. */
static napi_value js_udp_offload(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value arr, v;
  const uint64_t *counts[3] = {&gso_sent, &gso_fallbacks, &gso_unavailable};
  napi_create_array_with_length(env, 3, &arr);
  for (uint32_t i = 0; i < 3; i++) {
    napi_create_double(env, (double)__atomic_load_n(counts[i], __ATOMIC_RELAXED), &v);
    napi_set_element(env, arr, i, v);
  }
  return arr;
}

/* abort(id): the pair ends with a reset on both sockets (no-op when already finished). */
static napi_value js_abort(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  uint32_t id;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc != 1 || napi_get_value_uint32(env, argv[0], &id) != napi_ok) return fail(env, "abort(id)");
  if (!E.running) return NULL;
  uint64_t one = 1;
  pthread_mutex_lock(&E.mu);
  if (E.n_aborts == E.cap_aborts) {
    size_t cap = E.cap_aborts ? E.cap_aborts * 2 : 16;
    uint32_t *a = realloc(E.aborts, cap * sizeof *a);
    if (!a) {
      pthread_mutex_unlock(&E.mu);
      return fail(env, "out of memory");
    }
    E.aborts = a;
    E.cap_aborts = cap;
  }
  E.aborts[E.n_aborts++] = id;
  pthread_mutex_unlock(&E.mu);
  if (write(E.evfd, &one, sizeof one) < 0) {
  }
  return NULL;
}

/*
 * firstByte(fd): the first byte waiting on a socket, without reading it
 * (0-255), or -1 when nothing has arrived yet, -2 at the peer's end, -3 on
 * an error. JavaScript uses it where it must not read a socket:
 *  - a parked data connection is still usable only while -1 (a reading
 *    socket cannot be stopped reliably before the engine takes it over);
 *  - the tunnel listener tells TLS from a sealed data connection by it and
 *    so never reads a TLS connection's first bytes in JavaScript: bytes fed
 *    to TLS that way leave Node's TLS read buffers at 1 KiB + 16 KiB for the
 *    connection's life (two read() calls per 17 KiB instead of one per 64).
 */
static napi_value js_first_byte(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], v;
  int32_t fd;
  unsigned char b;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc != 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) return fail(env, "firstByte(fd)");
  ssize_t r = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
  int out = r > 0 ? (int)b : r == 0 ? -2 : (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? -1 : -3;
  napi_create_int32(env, out, &v);
  return v;
}

/*
 * deferAccept(fd, seconds): TCP_DEFER_ACCEPT on a listening socket, so
 * accept() returns a connection once its first bytes are there (both TLS
 * clients and sealed data connections speak first) and firstByte() can
 * route it without reading. A connection that stays silent is accepted
 * after about `seconds` anyway. Returns 0, or -1 when the kernel refused.
 */
static napi_value js_defer_accept(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], v;
  int32_t fd, secs;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc != 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_int32(env, argv[1], &secs) != napi_ok || fd < 0 || secs < 1)
    return fail(env, "deferAccept(fd, seconds)");
  int r = setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &secs, sizeof secs);
  napi_create_int32(env, r == 0 ? 0 : -1, &v);
  return v;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"init", NULL, js_init, NULL, NULL, NULL, napi_default, NULL},
      {"add", NULL, js_add, NULL, NULL, NULL, napi_default, NULL},
      {"addUdp", NULL, js_add_udp, NULL, NULL, NULL, napi_default, NULL},
      {"udpSocket", NULL, js_udp_socket, NULL, NULL, NULL, napi_default, NULL},
      {"udpDrain", NULL, js_udp_drain, NULL, NULL, NULL, napi_default, NULL},
      {"closeFd", NULL, js_close_fd, NULL, NULL, NULL, napi_default, NULL},
      {"abort", NULL, js_abort, NULL, NULL, NULL, napi_default, NULL},
      {"udpOffload", NULL, js_udp_offload, NULL, NULL, NULL, napi_default, NULL},
      {"firstByte", NULL, js_first_byte, NULL, NULL, NULL, napi_default, NULL},
      {"deferAccept", NULL, js_defer_accept, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
