#!/bin/sh
# Help-assistant benchmark (not a test): the answer time of POST /api/v1/assistant/ask through
# meetlited (tests/bench/kb-http.py: HTTP on loopback, the database job, ml_kb_answer with its
# log row), and below it the latency of ml_kb_ask and ml_kb_search alone measured with pgbench
# over PostgreSQL's unix socket, with 1,000 articles on this machine.
# The knowledge base is the starter set (the migrations) plus deterministic filler articles
# (tests/bench/kb-filler.py) up to ARTICLES; the questions are tests/data/kb/questions.tsv,
# picked at random by pgbench. Also prints the retrieval accuracy with the filler in place.
#
#   tests/bench/bench-kb.sh [BUILD_DIR]     (default: build-dev; measure the endpoint with a
#                                            build without --enable-devel: ASan slows it)
#
# Environment: ARTICLES (1000), DURATION (30, seconds per run), CLIENTS ("1 2": one run each),
# SEED (18).
set -eu
cd "$(dirname "$0")/../.."
top=$(pwd)
BUILD=${1:-build-dev}
ML="$top/$BUILD/meetlited"
[ -x "$ML" ] || { echo "bench-kb: $ML not built" >&2; exit 1; }
PGBIN=$(pg_config --bindir 2>/dev/null || true)
PGBENCH=$(command -v pgbench || { [ -x "$PGBIN/pgbench" ] && echo "$PGBIN/pgbench"; } ||
          ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | tail -n 1 || true)
[ -n "$PGBENCH" ] && [ -x "$PGBENCH" ] || { echo "bench-kb: pgbench missing (apt-get install -y postgresql)" >&2; exit 1; }
ARTICLES=${ARTICLES:-1000}; DURATION=${DURATION:-30}; CLIENTS=${CLIENTS:-1 2}; SEED=${SEED:-18}

work=$(mktemp -d /var/tmp/mlbench-kb.XXXXXX)
chmod 755 "$work"
cleanup() {
    sh tests/lib/pg.sh stop "$work/pg" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

URL=$(sh tests/lib/pg.sh start "$work/pg")
"$ML" --set "database.url=$URL" --set "database.migrations-dir=$top/sql" --migrate >/dev/null 2>&1
starter=$(psql "$URL" -XAtqc "SELECT count(*) FROM kb_articles")
filler=$((ARTICLES - starter))
[ "$filler" -ge 0 ] || filler=0
echo "bench-kb: $starter starter articles, generating $filler filler articles (seed $SEED)"
python3 tests/bench/kb-filler.py "$filler" "$work/filler" "$SEED"
t0=$(date +%s)
python3 scripts/kb-import.py --url "$URL" "$work/filler" >/dev/null
t1=$(date +%s)
psql "$URL" -XAtqc "VACUUM ANALYZE" >/dev/null
echo "bench-kb: imported in $((t1 - t0)) s; $(psql "$URL" -XAtqc "SELECT count(*) || ' articles, ' ||
    (SELECT count(*) FROM kb_passages) || ' passages, ' || (SELECT count(*) FROM kb_terms) ||
    ' lexemes, ' || (SELECT count(DISTINCT word) FROM kb_words) || ' words' FROM kb_articles")"

# the questions, for pgbench to pick from
python3 - "$URL" <<'PY'
import subprocess, sys
sys.path.insert(0, "tests/lib")
import mlkb
qs = mlkb.load_questions()
rows = ",\n".join("(%d, %s, %s, %s)" % (q.n, mlkb.dollar(q.text), mlkb.dollar(q.lang),
                                         mlkb.dollar(q.audience)) for q in qs)
sql = ("CREATE TABLE kb_bench_q (n integer PRIMARY KEY, question text, lang text, audience text);\n"
       "INSERT INTO kb_bench_q VALUES %s;\n" % rows)
subprocess.run(["psql", sys.argv[1], "-Xq", "-v", "ON_ERROR_STOP=1", "-f", "-"], input=sql,
               text=True, check=True)
PY
NQ=$(psql "$URL" -XAtqc "SELECT count(*) FROM kb_bench_q")

# retrieval quality with the filler competing
python3 tests/lib/mlkb.py "$URL" | grep -E "^(top 3|misspelled|off-topic)"

cat > "$work/ask.sql" <<SQL
\set n random(1, $NQ)
SELECT s.slug, s.score, s.snippet FROM kb_bench_q q,
       LATERAL ml_kb_ask(q.question, q.lang, q.audience, 5, NULL) s WHERE q.n = :n;
SQL
cat > "$work/search.sql" <<SQL
\set n random(1, $NQ)
SELECT s.slug, s.score, s.snippet FROM kb_bench_q q,
       LATERAL ml_kb_search(q.question, q.lang, q.audience, 5) s WHERE q.n = :n;
SQL

pct() {  # pct FILE...: p50 p90 p99 max of pgbench's per-transaction latencies (microseconds)
    cat "$@" | awk '{print $3}' | sort -n | awk '{a[NR] = $1}
        END {printf "n=%d p50=%.1fms p90=%.1fms p99=%.1fms max=%.1fms\n", NR,
             a[int(NR * .50)] / 1000, a[int(NR * .90)] / 1000, a[int(NR * .99)] / 1000,
             a[NR] / 1000}'
}

# warm up: every question once (plans cached, pages in memory)
"$PGBENCH" -n -f "$work/search.sql" -t "$NQ" -c 1 "$URL" >/dev/null 2>&1

echo "bench-kb: load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for script in ask search; do
    for c in $CLIENTS; do
        rm -f "$work"/pgbench_log.*
        (cd "$work" && "$PGBENCH" -n -f "$work/$script.sql" -c "$c" -j "$c" -T "$DURATION" -l \
            "$URL" > "$work/out.txt" 2>&1) || { cat "$work/out.txt"; exit 1; }
        tps=$(grep -E "^tps" "$work/out.txt" | head -n 1 | awk '{print $3}')
        echo "ml_kb_$script, $c client(s), ${DURATION}s: $(pct "$work"/pgbench_log.*) tps=$tps"
    done
done
for c in $CLIENTS; do
    python3 tests/bench/kb-http.py "$URL" "$DURATION" "$c" "$ML"
done
echo "bench-kb: load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
