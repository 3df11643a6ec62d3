/* The least a blob server can do, to measure what regbench's client takes in and sends out
 * when the server costs next to nothing: one thread per connection, no routing beyond the
 * method, no metadata, no authorization. GET sends FILE with sendfile (and the same 16 KiB
 * TCP_NOTSENT_LOWAT Bulwark sets); POST answers 202 with a Location; PUT reads the body,
 * hashes it with SHA-256, writes it to DIR/upload, fsyncs it and answers 201 with the
 * digest, which is what a registry must do at least before it acknowledges a blob.
 * Usage: ideal_server PORT FILE DIGEST DIR. Bench code: a request head must fit 64 KiB. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *file, *file_digest, *dir;

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static int serve_get(int c) {
  int f = open(file, O_RDONLY);
  struct stat st;
  if (f < 0) return -1;
  off_t off = 0;
  st.st_size = -1;
  char head[512];
  if (fstat(f, &st) < 0) goto done;
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 200 OK\r\nContent-Length: %lld\r\nDocker-Content-Digest: %s\r\n"
                   "Content-Type: application/octet-stream\r\n\r\n",
                   (long long)st.st_size, file_digest);
  if (write_all(c, head, (size_t)n) < 0) goto done;
  while (off < st.st_size)
    if (sendfile(c, f, &off, (size_t)(st.st_size - off)) <= 0) break;
done:
  close(f);
  return off == st.st_size ? 0 : -1;
}

/* Reads the body (`have` bytes of it already in buf), hashes and stores it, answers 201. */
static int serve_put(int c, char *buf, size_t cap, const char *body, long have, long length) {
  char path[4096], hex[65], head[512];
  snprintf(path, sizeof path, "%s/upload", dir);
  int f = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600), status = -1;
  if (f < 0) return -1;
  EVP_MD_CTX *h = EVP_MD_CTX_new();
  EVP_DigestInit_ex(h, EVP_sha256(), NULL);
  EVP_DigestUpdate(h, body, (size_t)have);
  if (write_all(f, body, (size_t)have) < 0) goto done;
  for (long left = length - have; left > 0;) {
    ssize_t r = read(c, buf, left < (long)cap ? (size_t)left : cap);
    if (r <= 0) goto done;
    EVP_DigestUpdate(h, buf, (size_t)r);
    if (write_all(f, buf, (size_t)r) < 0) goto done;
    left -= r;
  }
  unsigned char md[32];
  EVP_DigestFinal_ex(h, md, NULL);
  if (fsync(f) < 0) goto done;
  for (int i = 0; i < 32; i++) sprintf(hex + 2 * i, "%02x", md[i]);
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 201 Created\r\nLocation: /v2/ideal/blobs/sha256:%s\r\n"
                   "Docker-Content-Digest: sha256:%s\r\nContent-Length: 0\r\n\r\n",
                   hex, hex);
  status = write_all(c, head, (size_t)n);
done:
  EVP_MD_CTX_free(h);
  close(f);
  return status;
}

static void *connection(void *arg) {
  int c = (int)(long)arg, lowat = 16 * 1024;
  setsockopt(c, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof lowat);
  size_t cap = 256 * 1024;
  char *buf = malloc(cap);
  for (;;) {
    size_t n = 0;
    char *end = NULL;
    while (!end) {
      ssize_t r = read(c, buf + n, 65535 - n);
      if (r <= 0) goto out;
      n += (size_t)r;
      buf[n] = 0;
      end = strstr(buf, "\r\n\r\n");
    }
    char *cl = strcasestr(buf, "\ncontent-length:");
    long length = cl ? atol(cl + 16) : 0, have = (long)(buf + n - (end + 4));
    int status;
    if (!strncmp(buf, "GET ", 4)) {
      status = serve_get(c);
    } else if (!strncmp(buf, "POST ", 5)) {
      static const char accepted[] =
          "HTTP/1.1 202 Accepted\r\nLocation: /v2/ideal/blobs/uploads/1\r\nContent-Length: 0\r\n\r\n";
      status = write_all(c, accepted, sizeof accepted - 1);
    } else if (!strncmp(buf, "PUT ", 4)) {
      status = serve_put(c, buf, cap, end + 4, have, length);
    } else {
      static const char refused[] = "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n";
      status = write_all(c, refused, sizeof refused - 1);
    }
    if (status < 0) break;
  }
out:
  free(buf);
  close(c);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s PORT FILE DIGEST DIR\n", argv[0]);
    return 2;
  }
  file = argv[2], file_digest = argv[3], dir = argv[4];
  int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1])),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 128) < 0) {
    perror("listen");
    return 1;
  }
  for (;;) {
    int c = accept(s, NULL, NULL);
    if (c < 0) continue;
    pthread_t t;
    pthread_create(&t, NULL, connection, (void *)(long)c);
    pthread_detach(t);
  }
}
