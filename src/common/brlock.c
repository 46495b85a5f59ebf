/* A reader-writer lock for data that every worker reads on every request and that is written
 * rarely (the TURN credential tables, the revocation set). A pthread rwlock's readers all
 * write its one counter, a cache line that then moves between cores at the rate of reads of
 * every worker together; here a thread reads through a slot of its own (a rwlock on a cache
 * line of its own, given on the thread's first read), so readers on different cores write
 * nothing in common, and a writer takes every slot, in order. Threads beyond ML_BRLOCK_SLOTS
 * share slots (readers still run together: the slots are rwlocks). */
#include "config.h"

#include "common/common.h"

#include <limits.h>

static unsigned brlock_next; /* slots given so far (atomic) */
static __thread unsigned brlock_mine = UINT_MAX;

int ml_brlock_init(struct ml_brlock *l)
{
    for (unsigned i = 0; i < ML_BRLOCK_SLOTS; i++) {
        if (pthread_rwlock_init(&l->slot[i].lock, NULL) != 0) {
            while (i--)
                pthread_rwlock_destroy(&l->slot[i].lock);
            return -1;
        }
    }
    return 0;
}

void ml_brlock_destroy(struct ml_brlock *l)
{
    for (unsigned i = 0; i < ML_BRLOCK_SLOTS; i++)
        pthread_rwlock_destroy(&l->slot[i].lock);
}

unsigned ml_brlock_rdlock(struct ml_brlock *l)
{
    if (brlock_mine == UINT_MAX)
        brlock_mine = __atomic_fetch_add(&brlock_next, 1, __ATOMIC_RELAXED) % ML_BRLOCK_SLOTS;
    pthread_rwlock_rdlock(&l->slot[brlock_mine].lock);
    return brlock_mine;
}

void ml_brlock_rdunlock(struct ml_brlock *l)
{
    pthread_rwlock_unlock(&l->slot[brlock_mine].lock); /* given by this thread's rdlock */
}

void ml_brlock_wrlock(struct ml_brlock *l)
{
    for (unsigned i = 0; i < ML_BRLOCK_SLOTS; i++)
        pthread_rwlock_wrlock(&l->slot[i].lock);
}

void ml_brlock_wrunlock(struct ml_brlock *l)
{
    for (unsigned i = ML_BRLOCK_SLOTS; i--;)
        pthread_rwlock_unlock(&l->slot[i].lock);
}
