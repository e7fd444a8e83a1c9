/* logd_query.c: logs.query over the stores: tail read backwards, pages read forwards, instances merged by time. */
#include <errno.h>
#include <string.h>

#include "lib/mp.h"
#include "lib/util.h"
#include "services/logd/logd.h"

#define SCAN_BLOCK (64u * 1024u)
#define SCAN_BLOCK_MANY (16u * 1024u) /* per reader, when many instances are merged */

/* Entries are ordered by (ts, instance, seq): time first, then a stable order for ties. */
static int key_cmp(uint64_t ts_a, const char *inst_a, uint64_t seq_a, uint64_t ts_b, const char *inst_b,
                   uint64_t seq_b) {
        int c;

        if (ts_a != ts_b)
                return ts_a < ts_b ? -1 : 1;
        c = strcmp(inst_a, inst_b);
        if (c != 0)
                return c;
        return seq_a < seq_b ? -1 : seq_a > seq_b ? 1 : 0;
}

static bool keep(const logd_query_t *q, const logd_entry_t *e) { return e->level <= q->level && e->ts >= q->since_ms; }

typedef struct reader {
        const logd_query_source_t *src;
        logd_files_t files;
        bool files_open;
        /* backwards (tail) */
        logd_rlines_t rl;
        bool first_line;
        bool has_newest;
        uint64_t newest;      /* seq of the newest record, whatever the filters */
        uint64_t first_taken; /* seq of the oldest entry the tail takes; 0: none */
        /* forwards */
        logd_flines_t fl;
        bool fl_open;
        bool eof;
        /* the current candidate of either direction */
        bool has_head;
        logd_entry_t head;
        uint64_t after; /* cursor: every entry up to this seq is consumed */
} reader_t;

void logd_entry_pack(msgpack_packer *pk, const char *instance, const logd_entry_t *e) {
        msgpack_pack_map(pk, 6);
        mp_pack_kv_str(pk, "instance", instance);
        mp_pack_kv_u64(pk, "seq", e->seq);
        mp_pack_kv_u64(pk, "ts", e->ts);
        mp_pack_kv_str(pk, "level", logd_level_name(e->level));
        mp_pack_kv_str(pk, "stream", logd_stream_name(e->stream));
        mp_pack_str(pk, "message");
        msgpack_pack_str(pk, e->message_len);
        msgpack_pack_str_body(pk, e->message, e->message_len);
}

/* ---- tail: where each instance's part of the last N entries starts ------------------------------ */

/* The previous entry of r that the filters keep, as head; none once older than since_ms. */
static int back(const logd_query_t *q, reader_t *r) {
        const char *line;
        size_t len;
        int k;

        r->has_head = false;
        while ((k = logd_rlines_prev(&r->rl, &line, &len, NULL)) > 0) {
                logd_entry_t e;

                if (r->first_line) {
                        r->first_line = false;
                        if (r->rl.partial)
                                continue; /* a record being written when we crashed: not one */
                }
                if (logd_record_parse(line, len, &e) < 0)
                        continue;
                if (!r->has_newest) {
                        r->newest = e.seq;
                        r->has_newest = true;
                }
                if (e.ts < q->since_ms)
                        return 0; /* everything before is older still */
                if (e.level > q->level)
                        continue;
                r->head = e;
                r->has_head = true;
                return 0;
        }
        return k;
}

static int tail_cursors(const logd_query_t *q, reader_t *readers, size_t n) {
        uint64_t taken = 0;
        int k;

        for (size_t i = 0; i < n; i++) {
                reader_t *r = &readers[i];

                k = logd_rlines_init(&r->rl, &r->files);
                if (k < 0)
                        return k;
                r->first_line = true;
                k = back(q, r);
                if (k < 0)
                        return k;
        }
        while (taken < q->tail) {
                reader_t *best = NULL;

                for (size_t i = 0; i < n; i++) {
                        reader_t *r = &readers[i];
                        if (r->has_head && (!best || key_cmp(r->head.ts, r->src->instance, r->head.seq, best->head.ts,
                                                             best->src->instance, best->head.seq) > 0))
                                best = r;
                }
                if (!best)
                        break;
                best->first_taken = best->head.seq;
                taken++;
                k = back(q, best);
                if (k < 0)
                        return k;
        }
        for (size_t i = 0; i < n; i++) {
                reader_t *r = &readers[i];

                r->after = r->first_taken ? r->first_taken - 1 : r->newest;
                r->has_head = false;
                logd_rlines_clear(&r->rl);
        }
        return 0;
}

/* ---- forwards ------------------------------------------------------------------------------------ */

typedef struct start_pred {
        uint64_t after, since;
} start_pred_t;

static bool is_start(const logd_entry_t *e, void *userdata) {
        const start_pred_t *p = userdata;

        return e->seq > p->after && e->ts >= p->since;
}

/* The next entry of r that the filters keep, as head. Returns 1 when the page's scan budget
 * ran out first (r->after says how far it got), 0 otherwise. */
static int forward(const logd_query_t *q, reader_t *r, uint64_t *scanned) {
        const char *line;
        size_t len;
        int k;

        r->has_head = false;
        while ((k = logd_flines_next(&r->fl, &line, &len, NULL)) > 0) {
                logd_entry_t e;

                *scanned += len + 1;
                if (logd_record_parse(line, len, &e) < 0 || e.seq <= r->after)
                        continue;
                if (!keep(q, &e)) {
                        r->after = e.seq;
                        if (*scanned > LOGD_QUERY_SCAN_BYTES)
                                return 1;
                        continue;
                }
                r->head = e;
                r->has_head = true;
                return 0;
        }
        if (k == 0)
                r->eof = true;
        return k;
}

static int open_forward(const logd_query_t *q, reader_t *r, size_t block) {
        start_pred_t p = { .after = r->after, .since = q->since_ms };
        uint64_t start = 0;
        int k;

        if (p.after > 0 || p.since > 0) {
                k = logd_files_seek(&r->files, is_start, &p, &start);
                if (k < 0)
                        return k;
        }
        k = logd_flines_init(&r->fl, &r->files, start, block);
        if (k < 0)
                return k;
        r->fl_open = true;
        return 0;
}

static uint64_t after_of(const logd_query_t *q, const char *instance) {
        for (size_t i = 0; i < q->n_after; i++)
                if (streq(q->after[i].instance, instance))
                        return q->after[i].after;
        return 0; /* an instance the previous page did not know yet: all of it */
}

static void readers_free(reader_t *readers, size_t n) {
        for (size_t i = 0; i < n; i++) {
                if (readers[i].fl_open)
                        logd_flines_clear(&readers[i].fl);
                logd_rlines_clear(&readers[i].rl);
                if (readers[i].files_open)
                        logd_files_close(&readers[i].files);
        }
        free(readers);
}

int logd_query_run(const logd_query_t *q, const logd_query_source_t *sources, size_t n, msgpack_packer *pk) {
        _cleanup_(msgpack_sbuffer_destroy) msgpack_sbuffer entries = {};
        msgpack_packer epk;
        reader_t *readers;
        uint64_t scanned = 0, bytes = 0;
        size_t count = 0, limit = q->limit ? q->limit : LOGD_QUERY_LIMIT_MAX;
        bool more = false;
        int k = 0;

        if (n > LOGD_QUERY_INSTANCES_MAX)
                return -E2BIG;
        if (limit > LOGD_QUERY_LIMIT_MAX)
                limit = LOGD_QUERY_LIMIT_MAX;
        readers = calloc(n + 1, sizeof(*readers));
        if (!readers)
                return -ENOMEM;
        msgpack_sbuffer_init(&entries);
        msgpack_packer_init(&epk, &entries, msgpack_sbuffer_write);

        for (size_t i = 0; i < n && k >= 0; i++) {
                readers[i].src = &sources[i];
                k = logd_files_open_store(&readers[i].files, sources[i].dir, sources[i].backups);
                readers[i].files_open = k >= 0;
                readers[i].after = q->has_after ? after_of(q, sources[i].instance) : 0;
        }
        if (k >= 0 && q->has_tail && !q->has_after)
                k = tail_cursors(q, readers, n);
        for (size_t i = 0; i < n && k >= 0; i++) {
                k = open_forward(q, &readers[i], n > 8 ? SCAN_BLOCK_MANY : SCAN_BLOCK);
                if (k >= 0)
                        k = forward(q, &readers[i], &scanned);
                if (k > 0)
                        more = true; /* out of scan budget already */
        }
        while (k >= 0 && !more && count < limit && bytes < LOGD_QUERY_PAGE_BYTES) {
                reader_t *best = NULL;

                for (size_t i = 0; i < n; i++) {
                        reader_t *r = &readers[i];
                        if (r->has_head && (!best || key_cmp(r->head.ts, r->src->instance, r->head.seq, best->head.ts,
                                                             best->src->instance, best->head.seq) < 0))
                                best = r;
                }
                if (!best)
                        break;
                logd_entry_pack(&epk, best->src->instance, &best->head);
                count++;
                bytes += best->head.message_len;
                best->after = best->head.seq;
                k = forward(q, best, &scanned);
                if (k > 0)
                        more = true;
        }
        if (k < 0) {
                readers_free(readers, n);
                return k;
        }
        for (size_t i = 0; i < n; i++)
                if (readers[i].has_head || !readers[i].eof)
                        more = true;

        msgpack_pack_map(pk, 3);
        mp_pack_str(pk, "entries");
        msgpack_pack_array(pk, count);
        /* The entries were packed ahead, to count them: their bytes follow the array header. */
        if (entries.size > 0)
                pk->callback(pk->data, entries.data, entries.size);
        mp_pack_str(pk, "cursor");
        msgpack_pack_map(pk, n);
        for (size_t i = 0; i < n; i++)
                mp_pack_kv_u64(pk, readers[i].src->instance, readers[i].after);
        mp_pack_kv_bool(pk, "more", more);
        readers_free(readers, n);
        return 0;
}
