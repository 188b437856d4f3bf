/*
 * Batched kernel randomness. libbsd's arc4random asks getpid() on each call
 * to notice a fork: two or three system calls per connection on each side
 * of a busy server (issue 15). Here one getrandom() call fills a batch
 * that serves a few dozen connections. The bytes are the kernel CSPRNG's
 * own output, each handed out once and wiped from the batch as it goes. A
 * forked child must never hand out what its parent also holds: a
 * pthread_atfork handler bumps a generation, and a batch drawn in another
 * generation is discarded.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/types.h>
#ifdef __linux__
#include <sys/random.h>
#endif
#include <stdlib.h> /* arc4random_buf: libbsd's overlay */

#include "random.h"

static volatile unsigned fork_gen = 1;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void in_child(void)
{
    fork_gen++;
}

static void register_atfork(void)
{
    (void)pthread_atfork(NULL, NULL, in_child);
}

static void draw(uint8_t *buf, size_t n)
{
#ifdef __linux__
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(buf + got, n - got, 0);
        if (r > 0) {
            got += (size_t)r;
        } else if (r < 0 && errno != EINTR) {
            arc4random_buf(buf + got, n - got); /* ENOSYS: a kernel before 3.17 */
            return;
        }
    }
#else
    arc4random_buf(buf, n);
#endif
}

void mpt_random_init(struct mpt_random *r)
{
    (void)pthread_once(&atfork_once, register_atfork);
    r->pos = MPT_RANDOM_BATCH;
    r->gen = 0;
    r->draws = 0;
}

void mpt_random_fill(struct mpt_random *r, uint8_t *out, size_t n)
{
    if (r->gen != fork_gen)
        mpt_random_wipe(r);
    if (n > MPT_RANDOM_BATCH / 4) { /* large draws go straight to the kernel */
        draw(out, n);
        return;
    }
    while (n > 0) {
        if (r->pos == MPT_RANDOM_BATCH) {
            draw(r->buf, MPT_RANDOM_BATCH);
            r->draws++;
            r->pos = 0;
            r->gen = fork_gen;
        }
        size_t k = MPT_RANDOM_BATCH - r->pos;
        if (k > n)
            k = n;
        memcpy(out, r->buf + r->pos, k);
        explicit_bzero(r->buf + r->pos, k);
        r->pos += k;
        out += k;
        n -= k;
    }
}

void mpt_random_wipe(struct mpt_random *r)
{
    explicit_bzero(r->buf, sizeof r->buf);
    r->pos = MPT_RANDOM_BATCH;
    r->gen = fork_gen;
}
