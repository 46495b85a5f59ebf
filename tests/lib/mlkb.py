"""The help assistant's retrieval quality: questions from tests/data/kb/questions.tsv asked
through ml_kb_search in one psql round trip, and what came back (Python standard library).

    python3 tests/lib/mlkb.py CONNINFO [QUESTIONS.tsv]    prints the accuracy and the misses
"""

import os
import re
import subprocess
import sys

TOP = os.environ.get("top_srcdir", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
QUESTIONS = os.path.join(TOP, "tests", "data", "kb", "questions.tsv")


class Question:
    def __init__(self, n, text, expected, lang, audience):
        self.n, self.text, self.lang, self.audience = n, text, lang, audience
        self.expected = [] if expected == "-" else expected.split("|")
        self.top = []  # [(slug, score)], best first

    @property
    def off_topic(self):
        return not self.expected

    def rank(self):
        """1-based rank of the first expected article in the answer, or None."""
        for i, (slug, _) in enumerate(self.top, start=1):
            if slug in self.expected:
                return i
        return None

    def top_score(self):
        return self.top[0][1] if self.top else 0.0


def load_questions(path=QUESTIONS):
    out = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            cols = line.split("\t")
            if len(cols) != 4:
                raise ValueError("%s:%d: expected 4 TAB-separated columns" % (path, lineno))
            out.append(Question(len(out) + 1, *cols))
    return out


def misspell(text):
    """text with its longest word (5 letters or more) missing its middle letter, as a hurried
    typist writes it ("camera" -> "camra"); None when no word is long enough."""
    words = [m for m in re.finditer(r"[A-Za-z]+", text) if len(m.group()) >= 5]
    if not words:
        return None
    m = max(words, key=lambda m: (len(m.group()), -m.start()))
    w = m.group()
    cut = len(w) // 2
    return text[:m.start()] + w[:cut] + w[cut + 1:] + text[m.end():]


def misspelled(questions):
    """The English on-topic questions, misspelled (see misspell)."""
    out = []
    for q in questions:
        if q.off_topic or q.lang != "en":
            continue
        t = misspell(q.text)
        if t:
            out.append(Question(len(out) + 1, t, "|".join(q.expected), q.lang, q.audience))
    return out


def dollar(s):
    n = 0
    while "$q%d$" % n in s:
        n += 1
    return "$q%d$%s$q%d$" % (n, s, n)


def ask_all(url, questions, k=3):
    """Fills q.top for every question with one psql call."""
    rows = ",\n".join("(%d, %s, %s, %s)" % (q.n, dollar(q.text), dollar(q.lang), dollar(q.audience))
                      for q in questions)
    sql = ("SELECT q.n, s.slug, s.score FROM (VALUES %s) AS q(n, question, lang, audience),\n"
           "LATERAL ml_kb_search(q.question, q.lang, q.audience, %d) AS s\n"
           "ORDER BY q.n, s.score DESC, s.slug;\n" % (rows, k))
    r = subprocess.run(["psql", url, "-XAtq", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-f", "-"],
                       input=sql, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError("psql: %s" % r.stderr)
    by_n = {q.n: q for q in questions}
    for q in questions:
        q.top = []
    for line in r.stdout.splitlines():
        n, slug, score = line.split("\t")
        by_n[int(n)].top.append((slug, float(score)))
    return questions


def summary(questions, threshold):
    on = [q for q in questions if not q.off_topic]
    off = [q for q in questions if q.off_topic]
    top3 = [q for q in on if q.rank() is not None]
    top1 = [q for q in on if q.rank() == 1]
    confident = [q for q in top3 if q.top_score() >= threshold]
    return {
        "on_topic": len(on), "off_topic": len(off),
        "top3": len(top3), "top1": len(top1),
        "top3_ratio": len(top3) / len(on) if on else 0.0,
        "answered": len(confident),
        "off_topic_low": len([q for q in off if q.top_score() < threshold]),
        "misses": [q for q in on if q.rank() is None],
        "off_topic_high": [q for q in off if q.top_score() >= threshold],
        "low_confidence": [q for q in top3 if q.top_score() < threshold],
    }


def describe(q):
    got = ", ".join("%s %.3f" % t for t in q.top) or "nothing"
    want = "|".join(q.expected) or "(no answer)"
    return "[%s/%s] %r: want %s, got %s" % (q.lang, q.audience, q.text, want, got)


def main(argv):
    url = argv[1]
    qs = load_questions(argv[2] if len(argv) > 2 else QUESTIONS)
    ask_all(url, qs)
    r = subprocess.run(["psql", url, "-XAtqc", "SELECT ml_kb_min_confidence()"],
                       capture_output=True, text=True, check=True)
    s = summary(qs, float(r.stdout.strip()))
    print("top 3: %d/%d (%.1f %%), top 1: %d, answered above threshold: %d; off-topic low: %d/%d"
          % (s["top3"], s["on_topic"], 100 * s["top3_ratio"], s["top1"], s["answered"],
             s["off_topic_low"], s["off_topic"]))
    for q in s["misses"]:
        print("MISS " + describe(q))
    for q in s["low_confidence"]:
        print("LOW  " + describe(q))
    for q in s["off_topic_high"]:
        print("HIGH " + describe(q))
    typos = ask_all(url, misspelled(qs))
    t = summary(typos, float(r.stdout.strip()))
    print("misspelled: top 3: %d/%d (%.1f %%), top 1: %d" % (t["top3"], t["on_topic"],
                                                          100 * t["top3_ratio"], t["top1"]))
    off = sorted(q.top_score() for q in qs if q.off_topic)
    hits = sorted(q.top_score() for q in qs if not q.off_topic and q.rank() is not None)
    print("off-topic top scores: %s" % " ".join("%.3f" % x for x in off))
    print("lowest right-answer top scores: %s" % " ".join("%.3f" % x for x in hits[:12]))


if __name__ == "__main__":
    main(sys.argv)
