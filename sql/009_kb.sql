-- meetlite schema: the help assistant's knowledge base (issue #18). Articles in Markdown, split
-- into passages by their headings and indexed with full text search (title and tags weight A,
-- heading B, body C; the article's language's configuration), a vocabulary for
-- typo correction (pg_trgm), a small synonym table for chat-style phrasing, the log of the
-- questions asked, and the functions the control plane and the admin API call:
--
--   ml_kb_upsert_article(slug, title, body_md, tags, language, audience, origin)
--   ml_kb_delete_article(slug)
--   ml_kb_search(question, lang, audience, limit)      ranked passages, one per article
--   ml_kb_ask(question, lang, audience, limit, account) the same, and the question logged
--   ml_kb_min_confidence()                              below it, "no good answer"
--   ml_kb_gaps(since, limit)                            what was asked and not answered
--   ml_kb_prune_questions(older_than)
--
-- Passages are indexed with their language's text search configuration ('english',
-- 'german', ...; 'simple' for a language PostgreSQL has no stemmer for); questions are parsed
-- with their language's configuration, English's (English words turn up in every language)
-- and 'simple', the words as written, so that one form or another meets the index.
--
-- Retrieval, not generation. How a question is scored (ml_kb_query, ml_kb_search):
--   1. normalised like the articles (lower case, accents off, punctuation to spaces);
--   2. phrases and words of kb_synonyms expanded ("cam" -> camera, "log in" -> sign in),
--      chat noise ("hi", "pls", "dont") dropped, stop words dropped;
--   3. each remaining word is a group of lexemes (its stem in the question's language, in
--      English, and as written); a word no article contains is corrected to the nearest word
--      of the vocabulary by trigram similarity ("camra" -> camera), or stays unknown;
--   4. each group weighs its inverse document frequency (kb_terms), so "black" counts more than
--      "meeting"; an unknown word weighs like a rare one, which keeps off-topic questions low;
--   5. a passage scores the weighted share of the groups it holds (1 in the title or tags,
--      0.8 in its heading, 0.6 in its text), plus ts_rank_cd (cover density) and the trigram
--      similarity of the question and the title, times a preference for the asker's audience
--      and language. An article is represented by its best passage.
-- The score lies in [0, 1]; ml_kb_min_confidence() is the threshold below which the answer says
-- that nothing matched well (tests/integration/kb_quality.py measures both sides of it).
--
-- pg_trgm and unaccent are trusted extensions (PostgreSQL 13 and later): a role with CREATE on
-- the database may create them; Debian's postgresql package ships both. Applied by `meetlited --migrate`
-- inside a transaction.

CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS unaccent;

CREATE TYPE kb_audience AS ENUM ('student', 'host', 'operator');

-- One article per slug. origin 'starter': shipped in the tree (kb/), loaded by a migration;
-- 'operator': added or edited through the admin API or CLI. A starter import never overwrites
-- an article an operator edited.
CREATE TABLE kb_articles (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug       text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$' AND length(slug) <= 80),
    title      text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    body_md    text NOT NULL CHECK (length(body_md) BETWEEN 1 AND 65536),
    tags       text[] NOT NULL DEFAULT '{}' CHECK (cardinality(tags) <= 20),
    language   text NOT NULL CHECK (language ~ '^[a-z]{2}$'),
    audience   kb_audience NOT NULL,
    origin     text NOT NULL DEFAULT 'operator' CHECK (origin IN ('starter', 'operator')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX kb_articles_language_idx ON kb_articles (language, audience);

-- An article cut at its headings, each passage at most ml_kb_passage_max() characters of text.
-- text is the section as plain text (Markdown marks removed): what is indexed and what the
-- snippet is cut from. tsv: the article's title and tags (A), the heading (B), the text (C).
CREATE TABLE kb_passages (
    article_id bigint NOT NULL REFERENCES kb_articles (id) ON DELETE CASCADE,
    ordinal    integer NOT NULL CHECK (ordinal >= 1),
    language   text NOT NULL,            -- the article's, so that a search needs no join
    heading    text CHECK (length(heading) <= 200),
    text       text NOT NULL CHECK (length(text) BETWEEN 1 AND 4000),
    tsv        tsvector NOT NULL,
    PRIMARY KEY (article_id, ordinal)
);
CREATE INDEX kb_passages_tsv_idx ON kb_passages USING gin (tsv);

-- Document frequencies: in how many articles of each language each lexeme of kb_passages.tsv
-- occurs. Kept up to date by ml_kb_upsert_article and ml_kb_delete_article (never recomputed
-- over the whole base).
CREATE TABLE kb_terms (
    lexeme   text NOT NULL,
    language text NOT NULL,
    ndoc     integer NOT NULL CHECK (ndoc > 0),
    PRIMARY KEY (lexeme, language)
);

-- The words of the articles as written (normalised, 3 to 40 characters, not only digits), per
-- language, with the number of articles holding each: the vocabulary typos are corrected
-- against (a question is corrected towards its own language's words and English ones).
CREATE TABLE kb_words (
    word     text NOT NULL,
    language text NOT NULL,
    ndoc     integer NOT NULL CHECK (ndoc > 0),
    PRIMARY KEY (word, language)
);
CREATE INDEX kb_words_trgm_idx ON kb_words USING gin (word gin_trgm_ops);

-- Query expansion for chat-style phrasing. term: a word or a phrase (normalised, words separated
-- by one space); expansion: words added to the term's group, or '' for chat noise that carries
-- nothing ("hi", "pls"). Applied to the questions, never to the articles. language: the
-- questions it applies to ('en' entries apply to every language, as English words appear in
-- all of them).
CREATE TABLE kb_synonyms (
    term      text NOT NULL CHECK (term ~ '^[[:alnum:]]+( [[:alnum:]]+)*$' AND length(term) <= 60),
    language  text NOT NULL DEFAULT 'en' CHECK (language ~ '^[a-z]{2}$'),
    expansion text NOT NULL CHECK (length(expansion) <= 200),
    PRIMARY KEY (term, language)
);

-- What was asked, for the operators' list of gaps (meetlite-admin kb gaps). Nothing about the
-- asker beyond the account id; e-mail addresses and long numbers are masked before storing
-- (ml_kb_log_question). A deleted account leaves its questions anonymous.
CREATE TABLE kb_questions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    question    text NOT NULL CHECK (length(question) BETWEEN 1 AND 500),
    account_id  uuid REFERENCES users (id) ON DELETE SET NULL,
    answered    boolean NOT NULL,
    top_score   real,
    top_article bigint REFERENCES kb_articles (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX kb_questions_created_idx ON kb_questions (created_at);
CREATE INDEX kb_questions_gaps_idx ON kb_questions (created_at) WHERE NOT answered;
CREATE INDEX kb_questions_account_idx ON kb_questions (account_id) WHERE account_id IS NOT NULL;

-- ---------------------------------------------------------------- constants

-- The largest passage, in characters of plain text: long enough for a whole answer ("open the
-- site settings, allow the camera, reload"), short enough that its snippet is about it.
CREATE FUNCTION ml_kb_passage_max() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 1200 $$;

-- Below this score ml_kb_ask logs the question as unanswered, and the assistant says it found
-- nothing that fits (and offers general articles). Chosen on tests/data/kb/questions.tsv: the
-- off-topic questions there score at most 0.36 ("how do I reset my home router" meets the
-- password article's "reset"), 201 of the 203 right answers in the top 3 score above it (the
-- lowest 0.38); kb_quality.py fails when an off-topic question reaches it or when fewer than
-- 90 % of the right answers do. Roughly: half of what the question says, found in one passage.
CREATE FUNCTION ml_kb_min_confidence() RETURNS real
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 0.40::real $$;

-- The text search configuration of a language code; 'simple' (no stemming, no stop words) for
-- languages PostgreSQL has no stemmer for.
CREATE FUNCTION ml_kb_config(p_lang text) RETURNS regconfig
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE p_lang
        WHEN 'en' THEN 'english' WHEN 'de' THEN 'german' WHEN 'fr' THEN 'french'
        WHEN 'es' THEN 'spanish' WHEN 'it' THEN 'italian' WHEN 'pt' THEN 'portuguese'
        WHEN 'nl' THEN 'dutch' WHEN 'sv' THEN 'swedish' WHEN 'da' THEN 'danish'
        WHEN 'no' THEN 'norwegian' WHEN 'fi' THEN 'finnish' WHEN 'ru' THEN 'russian'
        WHEN 'hu' THEN 'hungarian' WHEN 'tr' THEN 'turkish'
        ELSE 'simple' END::regconfig
$$;

-- Text as both articles and questions are indexed: lower case, accents removed, apostrophes and
-- other punctuation to spaces ("l'appareil", "udp/tcp", "turn.auth-secret" are several words),
-- except "e-mail" and "wi-fi", whose halves mean nothing alone.
CREATE FUNCTION ml_kb_normalize(p text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT btrim(regexp_replace(
        regexp_replace(regexp_replace(lower(unaccent(coalesce(p, ''))),
                                      '\me-mail', 'email', 'g'),
                       '\mwi-fi\M', 'wifi', 'g'),
        '[^[:alnum:]]+', ' ', 'g'))
$$;

-- The lexemes of normalised text in the article's configuration, with a weight. The words as
-- written ('simple') are not indexed again: a question is parsed with its own language's
-- configuration, English's and 'simple' (ml_kb_lexemes), which finds the same passages; an
-- index with the 'simple' copy was twice as large, a third slower, and no more accurate on
-- tests/data/kb/questions.tsv (99.5 % in the top 3 either way).
CREATE FUNCTION ml_kb_vector(p_cfg regconfig, p_norm text, p_weight "char") RETURNS tsvector
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT setweight(to_tsvector(p_cfg, p_norm), p_weight)
$$;

-- The stem of one word in a configuration (NULL for a stop word).
CREATE FUNCTION ml_kb_stem(p_cfg regconfig, p_word text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT (tsvector_to_array(to_tsvector(p_cfg, p_word)))[1]
$$;

-- The vocabulary words of an article (see kb_words).
CREATE FUNCTION ml_kb_article_words(p_title text, p_tags text[], p_body text) RETURNS SETOF text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT DISTINCT w
    FROM regexp_split_to_table(ml_kb_normalize(p_title || ' ' || array_to_string(p_tags, ' ')
                                               || ' ' || p_body), ' ') AS w
    WHERE length(w) BETWEEN 3 AND 40 AND w !~ '^[0-9]+$'
$$;

-- ---------------------------------------------------------------- splitting

-- Markdown of one section as plain text: links and images to their text, code marks, emphasis,
-- list and quote markers, table pipes and HTML tags removed; paragraphs kept apart by one blank
-- line.
CREATE FUNCTION ml_kb_plain(p_md text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT btrim(regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(
           regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(
               p_md,
               '!?\[([^]]*)\]\([^)]*\)', '\1', 'g'),             -- [text](url), ![alt](src)
               '<[^>\n]*>', '', 'g'),                            -- HTML tags
               '`+', '', 'g'),                                   -- code marks
               '^[ \t]*([-*+]|[0-9]+[.)])[ \t]+', '', 'gn'),     -- list markers
               '^[ \t]*>[ \t]?', '', 'gn'),                      -- quotes
               '^[ \t]*\|?[ \t:|-]*-[ \t:|-]*$', '', 'gn'),      -- table rules
               '[ \t]*\|[ \t]*', ' ', 'g'),                      -- table cells
               '(^|[^[:alnum:]])[*_]{1,3}([^*_\n]+)[*_]{1,3}', '\1\2', 'g'),  -- emphasis
               '[ \t]+', ' ', 'g'),
               '\n\s*\n\s*', E'\n\n', 'g'), E' \t\n')
$$;

-- An article's Markdown cut into passages: a passage per heading (# to ######, outside fenced
-- code), the text before the first heading a passage without one; a section longer than
-- p_max characters of plain text is cut between paragraphs, a paragraph longer than that
-- between sentences, a sentence longer than that between words. Sections without text are
-- skipped. Returns at most 200 passages.
CREATE FUNCTION ml_kb_split(p_md text, p_max integer DEFAULT ml_kb_passage_max())
RETURNS TABLE (ordinal integer, heading text, text text)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
#variable_conflict use_variable
DECLARE
    line     text;
    fence    text := NULL;       -- the fence that opened the current code block
    head     text := NULL;
    buf      text := '';
    sections text[] := '{}';     -- heading, markdown, heading, markdown, ...
    i        integer;
    plain    text;
    para     text;
    piece    text;
    cur      text;
    m        text[];
    n        integer := 0;
BEGIN
    p_max := greatest(coalesce(p_max, ml_kb_passage_max()), 200);
    FOREACH line IN ARRAY regexp_split_to_array(replace(coalesce(p_md, ''), E'\r', ''), E'\n') LOOP
        IF fence IS NULL AND line ~ '^ {0,3}(```|~~~)' THEN
            fence := substr(ltrim(line), 1, 3);
        ELSIF fence IS NOT NULL AND ltrim(line) LIKE fence || '%' THEN
            fence := NULL;
        ELSIF fence IS NULL THEN
            m := regexp_match(line, '^ {0,3}#{1,6}[ \t]+(.*?)[ \t]*#*[ \t]*$');
            IF m IS NOT NULL THEN
                sections := sections || ARRAY[head, buf];
                head := left(ml_kb_plain(m[1]), 200);
                buf := '';
                CONTINUE;
            END IF;
        END IF;
        buf := buf || line || E'\n';
    END LOOP;
    sections := sections || ARRAY[head, buf];

    <<outer>>
    FOR i IN 1 .. cardinality(sections) / 2 LOOP
        heading := nullif(sections[2 * i - 1], '');
        plain := ml_kb_plain(sections[2 * i]);
        CONTINUE WHEN plain = '';
        cur := '';
        FOREACH para IN ARRAY regexp_split_to_array(plain, E'\n\n') LOOP
            -- a paragraph too long for one passage: cut between sentences, then words
            WHILE length(para) > p_max LOOP
                piece := substr(para, 1, p_max);
                m := regexp_match(piece, '^(.*[.!?:;])\s');
                IF m IS NULL OR length(m[1]) < p_max / 3 THEN
                    m := regexp_match(piece, '^(.*\S)\s');
                END IF;
                piece := coalesce(m[1], piece);
                IF cur <> '' THEN
                    n := n + 1; ordinal := n; text := cur; RETURN NEXT;
                    cur := '';
                END IF;
                EXIT outer WHEN n >= 200;
                n := n + 1; ordinal := n; text := piece; RETURN NEXT;
                EXIT outer WHEN n >= 200;
                para := ltrim(substr(para, length(piece) + 1), E' \t\n');
            END LOOP;
            CONTINUE WHEN para = '';
            IF cur <> '' AND length(cur) + 2 + length(para) > p_max THEN
                n := n + 1; ordinal := n; text := cur; RETURN NEXT;
                cur := '';
                EXIT outer WHEN n >= 200;
            END IF;
            cur := CASE WHEN cur = '' THEN para ELSE cur || E'\n\n' || para END;
        END LOOP;
        IF cur <> '' THEN
            n := n + 1; ordinal := n; text := cur; RETURN NEXT;
        END IF;
        EXIT WHEN n >= 200;
    END LOOP;
END
$$;

-- ---------------------------------------------------------------- writing

-- Adds one to the document frequency of each lexeme and of each word of a language (sign 1),
-- or takes one away (sign -1). Callers hold the knowledge base's advisory lock.
CREATE FUNCTION ml_kb_count(p_lexemes text[], p_words text[], p_lang text, p_sign integer)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_sign > 0 THEN
        INSERT INTO kb_terms AS t (lexeme, language, ndoc)
        SELECT l, p_lang, 1 FROM unnest(p_lexemes) AS l ORDER BY l
        ON CONFLICT (lexeme, language) DO UPDATE SET ndoc = t.ndoc + 1;
        INSERT INTO kb_words AS t (word, language, ndoc)
        SELECT w, p_lang, 1 FROM unnest(p_words) AS w ORDER BY w
        ON CONFLICT (word, language) DO UPDATE SET ndoc = t.ndoc + 1;
    ELSE
        PERFORM 1 FROM kb_terms WHERE lexeme = ANY (p_lexemes) AND language = p_lang
        ORDER BY lexeme FOR UPDATE;
        DELETE FROM kb_terms WHERE lexeme = ANY (p_lexemes) AND language = p_lang AND ndoc <= 1;
        UPDATE kb_terms SET ndoc = ndoc - 1 WHERE lexeme = ANY (p_lexemes) AND language = p_lang;
        PERFORM 1 FROM kb_words WHERE word = ANY (p_words) AND language = p_lang
        ORDER BY word FOR UPDATE;
        DELETE FROM kb_words WHERE word = ANY (p_words) AND language = p_lang AND ndoc <= 1;
        UPDATE kb_words SET ndoc = ndoc - 1 WHERE word = ANY (p_words) AND language = p_lang;
    END IF;
END
$$;

-- The lexemes and words an article contributes to kb_terms and kb_words.
CREATE FUNCTION ml_kb_article_lexemes(p_article bigint) RETURNS text[]
LANGUAGE sql STABLE AS $$
    SELECT coalesce(array_agg(DISTINCT l ORDER BY l), '{}')
    FROM kb_passages p, unnest(tsvector_to_array(p.tsv)) AS l
    WHERE p.article_id = p_article
$$;

-- Adds or replaces an article (by slug) and its passages. outcome:
--   created, updated;
--   unchanged: the same title, body, tags, language and audience (nothing rewritten);
--   kept: a starter import (p_origin 'starter') met an article an operator changed;
--   invalid: message names the field and what is wrong (the admin API answers 422).
-- Tags are trimmed, lower-cased and deduplicated. An operator's write of a starter article
-- makes it the operator's.
CREATE FUNCTION ml_kb_upsert_article(p_slug text, p_title text, p_body_md text, p_tags text[],
                                     p_language text, p_audience text,
                                     p_origin text DEFAULT 'operator')
RETURNS TABLE (outcome text, article_id bigint, passages integer, message text)
LANGUAGE plpgsql AS $$
#variable_conflict use_variable
DECLARE
    a        kb_articles;
    tags     text[];
    title    text := btrim(p_title);
    cfg      regconfig;
    head     tsvector;
    bad      text;
    ords     integer[];
    heads    text[];
    texts    text[];
BEGIN
    -- one writer of the knowledge base at a time: an import updates the shared counts of
    -- kb_terms and kb_words for many articles in one transaction
    PERFORM pg_advisory_xact_lock(7305182944519235104);
    SELECT coalesce(array_agg(DISTINCT t ORDER BY t), '{}') INTO tags
    FROM (SELECT lower(btrim(x)) AS t FROM unnest(coalesce(p_tags, '{}')) AS x) s WHERE t <> '';
    bad := CASE
        WHEN p_slug IS NULL OR p_slug !~ '^[a-z0-9]+(-[a-z0-9]+)*$' OR length(p_slug) > 80 THEN
            'slug: 1 to 80 of a-z, 0-9 and single hyphens between them'
        WHEN title IS NULL OR length(title) NOT BETWEEN 1 AND 200 OR title ~ '[[:cntrl:]]' THEN
            'title: 1 to 200 characters, no control characters'
        WHEN p_body_md IS NULL OR length(p_body_md) > 65536 THEN
            'body: 1 to 65536 characters of Markdown'
        WHEN cardinality(tags) > 20 OR EXISTS (SELECT 1 FROM unnest(tags) t
                                               WHERE length(t) > 40 OR t ~ '[[:cntrl:]]') THEN
            'tags: at most 20, each at most 40 characters'
        WHEN p_language IS NULL OR p_language !~ '^[a-z]{2}$' THEN
            'language: a two-letter code such as en'
        WHEN p_audience IS NULL OR p_audience NOT IN ('student', 'host', 'operator') THEN
            'audience: student, host or operator'
        WHEN p_origin IS NULL OR p_origin NOT IN ('starter', 'operator') THEN
            'origin: starter or operator'
        END;
    IF bad IS NULL THEN
        SELECT array_agg(s.ordinal ORDER BY s.ordinal), array_agg(s.heading ORDER BY s.ordinal),
               array_agg(s.text ORDER BY s.ordinal)
        INTO ords, heads, texts
        FROM ml_kb_split(p_body_md) s;
        IF ords IS NULL THEN
            bad := 'body: no text (only blank lines or headings)';
        END IF;
    END IF;
    IF bad IS NOT NULL THEN
        outcome := 'invalid';
        message := bad;
        RETURN NEXT;
        RETURN;
    END IF;

    SELECT * INTO a FROM kb_articles x WHERE x.slug = p_slug FOR UPDATE;
    IF a.id IS NOT NULL THEN
        article_id := a.id;
        IF p_origin = 'starter' AND a.origin = 'operator' THEN
            outcome := 'kept';
            SELECT count(*) INTO passages FROM kb_passages x WHERE x.article_id = a.id;
            RETURN NEXT;
            RETURN;
        END IF;
        IF a.title = title AND a.body_md = p_body_md AND a.tags = tags
           AND a.language = p_language AND a.audience = p_audience::kb_audience THEN
            IF a.origin <> p_origin THEN
                UPDATE kb_articles x SET origin = p_origin WHERE x.id = a.id;
            END IF;
            outcome := 'unchanged';
            SELECT count(*) INTO passages FROM kb_passages x WHERE x.article_id = a.id;
            RETURN NEXT;
            RETURN;
        END IF;
        PERFORM ml_kb_count(ml_kb_article_lexemes(a.id),
                            ARRAY(SELECT ml_kb_article_words(a.title, a.tags, a.body_md)),
                            a.language, -1);
        DELETE FROM kb_passages x WHERE x.article_id = a.id;
        UPDATE kb_articles x
        SET title = title, body_md = p_body_md, tags = tags, language = p_language,
            audience = p_audience::kb_audience, origin = p_origin, updated_at = now()
        WHERE x.id = a.id;
        outcome := 'updated';
    ELSE
        INSERT INTO kb_articles AS x (slug, title, body_md, tags, language, audience, origin)
        VALUES (p_slug, title, p_body_md, tags, p_language, p_audience::kb_audience, p_origin)
        RETURNING x.id INTO article_id;
        outcome := 'created';
    END IF;

    cfg := ml_kb_config(p_language);
    head := ml_kb_vector(cfg, ml_kb_normalize(title), 'A')
         || ml_kb_vector(cfg, ml_kb_normalize(array_to_string(tags, ' ')), 'A');
    INSERT INTO kb_passages (article_id, ordinal, language, heading, text, tsv)
    SELECT article_id, s.o, p_language, s.h, s.t,
           head || ml_kb_vector(cfg, ml_kb_normalize(s.h), 'B')
                || ml_kb_vector(cfg, ml_kb_normalize(s.t), 'C')
    FROM unnest(ords, heads, texts) AS s(o, h, t);
    GET DIAGNOSTICS passages = ROW_COUNT;
    PERFORM ml_kb_count(ml_kb_article_lexemes(article_id),
                        ARRAY(SELECT ml_kb_article_words(title, tags, p_body_md)), p_language, 1);
    RETURN NEXT;
END
$$;

-- Deletes an article, its passages and its share of the statistics. false: no such slug.
CREATE FUNCTION ml_kb_delete_article(p_slug text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    a kb_articles;
BEGIN
    PERFORM pg_advisory_xact_lock(7305182944519235104);   -- as ml_kb_upsert_article
    SELECT * INTO a FROM kb_articles WHERE slug = p_slug FOR UPDATE;
    IF a.id IS NULL THEN
        RETURN false;
    END IF;
    PERFORM ml_kb_count(ml_kb_article_lexemes(a.id),
                        ARRAY(SELECT ml_kb_article_words(a.title, a.tags, a.body_md)), a.language,
                        -1);
    DELETE FROM kb_articles WHERE id = a.id;
    RETURN true;
END
$$;

-- ---------------------------------------------------------------- asking

-- The OR of lexemes as a tsquery, each restricted to the weights given (NULL: any weight).
-- Lexemes come from to_tsvector over normalised text: letters and digits only.
CREATE FUNCTION ml_kb_or(p_lexemes text[], p_weights text) RETURNS tsquery
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT string_agg(quote_literal(l) || coalesce(':' || p_weights, ''), ' | ' ORDER BY l)::tsquery
    FROM unnest(p_lexemes) AS l
$$;

-- What a word or phrase of a question may match: its lexemes in the question's configuration,
-- in English (English words turn up in every language) and as written.
CREATE FUNCTION ml_kb_lexemes(p_cfg regconfig, p_text text) RETURNS text[]
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT ARRAY(SELECT DISTINCT l FROM unnest(tsvector_to_array(
        to_tsvector(p_cfg, p_text) || to_tsvector('english', p_text)
        || to_tsvector('simple', p_text))) AS l ORDER BY l)
$$;

-- The expansion of a question's word (kb_synonyms): the word as typed, else its stem ("hears"
-- finds "hear"); the asker's language before English. NULL: no synonym; '': chat noise.
CREATE FUNCTION ml_kb_synonym(p_word text, p_lang text, p_cfg regconfig) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT y.expansion FROM kb_synonyms y
    WHERE y.language IN (p_lang, 'en')
      AND y.term IN (p_word, ml_kb_stem('english', p_word), ml_kb_stem(p_cfg, p_word))
    ORDER BY y.term = p_word DESC, y.language = p_lang DESC
    LIMIT 1
$$;

-- In how many articles of the asker's language and English the commonest of some lexemes
-- occurs (NULL: none holds any).
CREATE FUNCTION ml_kb_df(p_lexemes text[], p_lang text) RETURNS integer
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT max(n)::integer FROM (
        SELECT sum(t.ndoc) AS n FROM kb_terms t
        WHERE t.lexeme = ANY (p_lexemes) AND t.language IN (p_lang, 'en')
        GROUP BY t.lexeme) s
$$;

-- A question as groups of lexemes (see the top of this file): one row per word or phrase that
-- carries meaning, in the question's order, with how it was read (kind: phrase, word, synonym,
-- corrected or unknown), its lexemes, its weight (inverse document frequency over p_n
-- articles) and how sure the reading is (1, or the trigram similarity of a correction).
-- ml_kb_search's first step, and the way to see why an answer came up.
CREATE FUNCTION ml_kb_query(p_question text, p_lang text, p_n integer)
RETURNS TABLE (grp integer, word text, kind text, lexemes text[], idf real, certainty real)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
    lang  text := CASE WHEN p_lang ~ '^[a-z]{2}$' THEN p_lang ELSE 'en' END;
    cfg   regconfig := ml_kb_config(lang);
    q     text := ' ' || ml_kb_normalize(left(p_question, 500)) || ' ';
    n     real := greatest(coalesce(p_n, 1), 1);
    s     record;
    lex   text[];
    seen  text[] := '{}';
    df    integer;
BEGIN
    grp := 0;
    -- phrases first ("log in", "black screen"): each a group, taken out of the question
    FOR s IN SELECT y.term, y.expansion FROM kb_synonyms y
             WHERE y.language IN ('en', lang) AND position(' ' IN y.term) > 0
               AND position(' ' || y.term || ' ' IN q) > 0
             ORDER BY length(y.term) DESC, y.term LOOP
        CONTINUE WHEN position(' ' || s.term || ' ' IN q) = 0;   -- a longer phrase took it
        q := replace(q, ' ' || s.term || ' ', ' ');
        CONTINUE WHEN s.expansion = '';
        lex := ml_kb_lexemes(cfg, s.expansion);
        CONTINUE WHEN cardinality(lex) = 0 OR lex <@ seen;
        seen := seen || lex;
        df := ml_kb_df(lex, lang);
        grp := grp + 1; word := s.term; kind := 'phrase'; lexemes := lex; certainty := 1;
        idf := ln(1 + n / coalesce(df, 1));
        RETURN NEXT;
    END LOOP;

    -- then the words, all at once
    RETURN QUERY
    WITH w AS (
        SELECT r.i, r.x, ml_kb_synonym(r.x, lang, cfg) AS exp
        FROM regexp_split_to_table(btrim(q), ' ') WITH ORDINALITY AS r(x, i)
        WHERE length(r.x) BETWEEN 1 AND 40 AND (length(r.x) >= 2 OR r.x ~ '[0-9]')
        ORDER BY r.i
        LIMIT 40
    ), k AS (   -- chat noise and stop words out
        SELECT w.i, w.x, w.exp, ml_kb_lexemes(cfg, w.x) AS lex
        FROM w
        WHERE w.exp IS DISTINCT FROM ''
          AND (w.exp IS NOT NULL OR (ml_kb_stem(cfg, w.x) IS NOT NULL
                                     AND ml_kb_stem('english', w.x) IS NOT NULL))
    ), u AS (   -- which words no article holds (and could be typos)
        SELECT k.*, k.exp IS NULL AND length(k.x) >= 4 AND k.x !~ '[0-9]'
                    AND NOT EXISTS (SELECT 1 FROM kb_terms t
                                    WHERE t.lexeme = ANY (k.lex) AND t.language IN (lang, 'en'))
                    AS unknown
        FROM k
    ), c AS (   -- such a word: the nearest word of the vocabulary, if near enough
        SELECT u.*, f.word AS fixed, f.sim
        FROM u LEFT JOIN LATERAL (
            SELECT v.word, similarity(v.word, u.x) AS sim
            FROM kb_words v
            WHERE u.unknown AND v.word % u.x AND v.language IN (lang, 'en')
              AND similarity(v.word, u.x) >= 0.4 AND abs(length(v.word) - length(u.x)) <= 2
            ORDER BY similarity(v.word, u.x) DESC, v.ndoc DESC, v.word
            LIMIT 1
        ) f ON true
    ), e AS (   -- a correction's own synonym
        SELECT c.i, c.x, c.fixed, c.sim, c.lex,
               CASE WHEN c.fixed IS NULL THEN c.exp ELSE ml_kb_synonym(c.fixed, lang, cfg) END AS exp
        FROM c
    ), g AS (
        SELECT e.i, coalesce(e.fixed, e.x) AS word,
               CASE WHEN e.fixed IS NOT NULL THEN 'corrected'
                    WHEN e.exp IS NOT NULL THEN 'synonym' ELSE 'word' END AS kind,
               ARRAY(SELECT DISTINCT l FROM unnest(
                   CASE WHEN e.fixed IS NULL THEN e.lex ELSE ml_kb_lexemes(cfg, e.fixed) END
                   || CASE WHEN coalesce(e.exp, '') <> '' THEN ml_kb_lexemes(cfg, e.exp)
                           ELSE '{}'::text[] END) AS l ORDER BY l) AS lex,
               coalesce(e.sim, 1)::real AS certainty
        FROM e
    ), d AS (   -- a word said twice counts once
        SELECT g.*, ml_kb_df(g.lex, lang) AS df
        FROM g
        WHERE cardinality(g.lex) > 0 AND NOT g.lex <@ seen
          AND NOT EXISTS (SELECT 1 FROM g g2 WHERE g2.i < g.i AND g.lex <@ g2.lex)
    )
    SELECT grp + (row_number() OVER (ORDER BY d.i))::integer, d.word,
           CASE WHEN d.df IS NULL THEN 'unknown' ELSE d.kind END, d.lex,
           -- a word no article holds weighs like one of a single article
           ln(1 + n / coalesce(d.df, 1))::real, d.certainty
    FROM d
    ORDER BY d.i;
END
$$;

-- The best passages for a question, one per article, best first: at most p_limit (1 to 50)
-- rows. p_lang: the asker's language (articles in it and in English are searched, those in it
-- preferred); p_audience: student, host or operator (a preference, not a filter: nothing in the
-- knowledge base is secret) or NULL. score in [0, 1] (see the top of this file); rank_cd: the
-- passage's ts_rank_cd; snippet: ts_headline of the passage with the matched words in **bold**
-- (Markdown, like the articles).
--
-- Two steps, so that the cost stays low with thousands of passages: every passage holding a
-- word of the question found in at most half of the articles (or two commoner ones, when such
-- words are most of the question) gets its weighted coverage (one CASE per group, built into the statement); the 40 best articles then
-- get ts_rank_cd, the title's similarity, the preferences and a snippet.
CREATE FUNCTION ml_kb_search(p_question text, p_lang text DEFAULT 'en',
                             p_audience text DEFAULT NULL, p_limit integer DEFAULT 5)
RETURNS TABLE (article_id bigint, slug text, title text, language text, audience kb_audience,
               ordinal integer, heading text, snippet text, score real, rank_cd real)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
    lang     text := CASE WHEN p_lang ~ '^[a-z]{2}$' THEN p_lang ELSE 'en' END;
    aud      text := CASE WHEN p_audience IN ('student', 'host', 'operator') THEN p_audience END;
    qnorm    text := ml_kb_normalize(left(p_question, 500));
    n        integer;
    g        record;
    total    real := 0;
    cover    text := '';             -- the coverage expression, one term per group
    strong   text[] := '{}';
    weak     tsquery[] := '{}';
    weak_w   real := 0;
    known    text[] := '{}';
    find     tsquery;
BEGIN
    IF qnorm = '' THEN
        RETURN;
    END IF;
    SELECT count(*) INTO n FROM kb_articles a WHERE a.language IN ('en', lang);
    FOR g IN SELECT * FROM ml_kb_query(p_question, lang, n) LOOP
        total := total + g.idf;
        CONTINUE WHEN g.kind = 'unknown';              -- in the denominator only
        -- the group's weight times where a passage holds it: title or tags, heading, text
        -- (its queries go in as constants, parsed once for the statement)
        cover := cover || format(' + %s * CASE WHEN NOT p.tsv @@ %L::tsquery THEN 0'
                                 ' WHEN p.tsv @@ %L::tsquery THEN 1.0'
                                 ' WHEN p.tsv @@ %L::tsquery THEN 0.8 ELSE 0.6 END',
                                 (g.idf * g.certainty)::numeric, ml_kb_or(g.lexemes, NULL),
                                 ml_kb_or(g.lexemes, 'A'), ml_kb_or(g.lexemes, 'AB'));
        known := known || g.lexemes;
        -- the candidates: passages with a word found in at most half of the articles
        -- ("strong"); the commoner words find passages only when they carry half of the
        -- question's weight, and then in pairs (one common word alone cannot reach the
        -- threshold, and would make nearly every passage a candidate)
        IF g.idf >= ln(3) THEN
            strong := strong || g.lexemes;
        ELSE
            weak := weak || ml_kb_or(g.lexemes, NULL);
            weak_w := weak_w + g.idf * g.certainty;
        END IF;
    END LOOP;
    IF cardinality(known) = 0 OR total <= 0 THEN
        RETURN;
    END IF;
    IF cardinality(strong) > 0 THEN
        find := ml_kb_or(strong, NULL);
    END IF;
    IF find IS NULL OR weak_w >= 0.5 * total THEN
        IF cardinality(weak) = 1 AND find IS NULL THEN
            find := weak[1];
        END IF;
        FOR i IN 1 .. cardinality(weak) LOOP
            FOR j IN i + 1 .. cardinality(weak) LOOP
                find := CASE WHEN find IS NULL THEN weak[i] && weak[j]
                             ELSE find || (weak[i] && weak[j]) END;
            END LOOP;
        END LOOP;
    END IF;

    -- $1 candidates' query, $2 total weight, $3 language, $4 normalised question,
    -- $5 audience, $6 limit, $7 every lexeme of the question (rank and snippet)
    RETURN QUERY EXECUTE format($q$
        WITH c AS MATERIALIZED (
            SELECT p.article_id, p.ordinal, (0 %s) / $2 AS cov
            FROM kb_passages p
            WHERE p.tsv @@ $1 AND p.language IN ('en', $3)
        ), b AS (
            SELECT DISTINCT ON (c.article_id) c.* FROM c
            ORDER BY c.article_id, c.cov DESC, c.ordinal
        ), s AS (
            SELECT b.* FROM b ORDER BY b.cov DESC, b.article_id LIMIT 40
        ), r AS (
            SELECT s.article_id, a.slug, a.title, a.language, a.audience, s.ordinal, p.heading,
                   p.text, ts_rank_cd(p.tsv, $7, 32) AS rcd,
                   least(1.0, (0.80 * s.cov + 0.10 * ts_rank_cd(p.tsv, $7, 32)
                               + 0.10 * similarity(ml_kb_normalize(a.title), $4))
                       * CASE WHEN $5::text IS NULL OR $5 = 'operator' OR a.audience::text = $5
                                   OR ($5 = 'host' AND a.audience = 'student') THEN 1.0
                              WHEN a.audience = 'operator' THEN 0.75
                              ELSE 0.9 END
                       * CASE WHEN a.language = $3 THEN 1.0 ELSE 0.9 END) AS score
            FROM s JOIN kb_articles a ON a.id = s.article_id
                   JOIN kb_passages p ON p.article_id = s.article_id AND p.ordinal = s.ordinal
            ORDER BY score DESC, a.slug
            LIMIT $6
        )
        SELECT r.article_id, r.slug, r.title, r.language, r.audience, r.ordinal, r.heading,
               ts_headline(ml_kb_config(r.language), r.text, $7,
                           'MaxWords=40, MinWords=18, ShortWord=2, MaxFragments=2, '
                           'FragmentDelimiter=" … ", StartSel="**", StopSel="**"'),
               r.score::real, r.rcd::real
        FROM r
        ORDER BY r.score DESC, r.slug
        $q$, cover)
    USING find, total, lang, qnorm, aud, greatest(1, least(coalesce(p_limit, 5), 50)),
          ml_kb_or(known, NULL);
END
$$;

-- ---------------------------------------------------------------- the questions' log

-- A question as it may be kept: trimmed, e-mail addresses and numbers of 8 digits or more
-- (telephone, student or card numbers) masked, at most 500 characters.
CREATE FUNCTION ml_kb_redact(p_question text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT left(btrim(regexp_replace(regexp_replace(regexp_replace(
               p_question,
               '[^[:space:]@<>()]+@[^[:space:]@<>()]+\.[[:alnum:]-]+', '[e-mail]', 'g'),
               '\+?[0-9]([ .()/-]?[0-9]){7,}', '[number]', 'g'),
               '[[:cntrl:]]+', ' ', 'g')), 500)
$$;

-- Records a question and whether it was answered (top score at or above
-- ml_kb_min_confidence()). Returns the row's id, or NULL for an empty question.
CREATE FUNCTION ml_kb_log_question(p_question text, p_account uuid, p_top_score real,
                                   p_top_article bigint)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    q  text := ml_kb_redact(p_question);
    id bigint;
BEGIN
    IF q IS NULL OR q = '' THEN
        RETURN NULL;
    END IF;
    INSERT INTO kb_questions (question, account_id, answered, top_score, top_article)
    VALUES (q, p_account, coalesce(p_top_score >= ml_kb_min_confidence(), false), p_top_score,
            p_top_article)
    RETURNING kb_questions.id INTO id;
    RETURN id;
END
$$;

-- ml_kb_search, and the question logged with its outcome, in one round trip: what
-- POST /api/v1/assistant/ask calls. p_account: the asker's account id, or NULL.
CREATE FUNCTION ml_kb_ask(p_question text, p_lang text, p_audience text, p_limit integer,
                          p_account uuid)
RETURNS TABLE (article_id bigint, slug text, title text, language text, audience kb_audience,
               ordinal integer, heading text, snippet text, score real, rank_cd real)
LANGUAGE plpgsql AS $$
DECLARE
    r         record;
    top_score real;
    top_id    bigint;
BEGIN
    FOR r IN SELECT * FROM ml_kb_search(p_question, p_lang, p_audience, p_limit) LOOP
        IF top_id IS NULL THEN
            top_score := r.score;
            top_id := r.article_id;
        END IF;
        article_id := r.article_id; slug := r.slug; title := r.title; language := r.language;
        audience := r.audience; ordinal := r.ordinal; heading := r.heading;
        snippet := r.snippet; score := r.score; rank_cd := r.rank_cd;
        RETURN NEXT;
    END LOOP;
    PERFORM ml_kb_log_question(p_question, p_account, coalesce(top_score, 0), top_id);
END
$$;

-- What students asked since p_since that found no good answer, most asked first: one row per
-- wording (normalised), with how often and by how many accounts it was asked, the best score it
-- got and the article that came closest. For meetlite-admin kb gaps.
CREATE FUNCTION ml_kb_gaps(p_since timestamptz, p_limit integer DEFAULT 50)
RETURNS TABLE (question text, asked integer, accounts integer, best_score real,
               closest_article text, last_asked timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT min(q.question), count(*)::integer, count(DISTINCT q.account_id)::integer,
           max(q.top_score),
           (SELECT a.slug FROM kb_questions x JOIN kb_articles a ON a.id = x.top_article
            WHERE NOT x.answered AND x.created_at >= p_since
              AND ml_kb_normalize(x.question) = ml_kb_normalize(min(q.question))
            ORDER BY x.top_score DESC NULLS LAST LIMIT 1),
           max(q.created_at)
    FROM kb_questions q
    WHERE NOT q.answered AND q.created_at >= p_since
    GROUP BY ml_kb_normalize(q.question)
    ORDER BY count(*) DESC, max(q.created_at) DESC
    LIMIT greatest(1, least(coalesce(p_limit, 50), 1000))
$$;

-- Deletes the questions older than p_age; returns how many.
CREATE FUNCTION ml_kb_prune_questions(p_age interval) RETURNS bigint
LANGUAGE sql AS $$
    WITH d AS (DELETE FROM kb_questions WHERE created_at < now() - p_age RETURNING 1)
    SELECT count(*) FROM d
$$;

-- ---------------------------------------------------------------- answers (the REST API)

-- The articles to offer when nothing matched well: the ones that most often answered questions
-- in the last 90 days, then the ones operators tagged "general" (the starter base tags the
-- basics: getting started, joining, camera, microphone, a connection that hangs), the asker's
-- language and audience first. A small base answers with the general ones only.
CREATE FUNCTION ml_kb_general(p_lang text, p_audience text, p_limit integer DEFAULT 5)
RETURNS TABLE (slug text, title text, language text, audience kb_audience)
LANGUAGE sql STABLE AS $$
    SELECT a.slug, a.title, a.language, a.audience
    FROM kb_articles a
    LEFT JOIN (SELECT q.top_article, count(*) AS n FROM kb_questions q
               WHERE q.answered AND q.created_at >= now() - interval '90 days'
               GROUP BY q.top_article) u ON u.top_article = a.id
    WHERE a.language IN (p_lang, 'en')
      AND (u.n IS NOT NULL OR 'general' = ANY (a.tags))
      AND (p_audience IS NULL OR p_audience = 'operator' OR a.audience::text = p_audience
           OR a.audience = 'student')
    ORDER BY (a.language = p_lang) DESC, coalesce(u.n, 0) DESC, ('general' = ANY (a.tags)) DESC,
             (a.audience::text = p_audience) DESC, a.slug
    LIMIT greatest(1, least(coalesce(p_limit, 5), 20))
$$;

-- The answer of POST /api/v1/assistant/ask as one JSON document (docs/api.md): the question
-- asked and logged (ml_kb_ask), the best p_shown passages with a link to their article when
-- the best scores at least ml_kb_min_confidence(), follow-up suggestions (other sections of
-- the best article, the next articles, the article that explains the client's network check
-- when it found a problem), or, when nothing matched well, the general articles.
-- p_network: the network check's verdict the client sent (udp, tcp, tls, none, unchecked) or
-- NULL. p_prefix: the path articles are read at ("/api/v1/assistant/articles/"). p_full: each
-- passage also carries its whole text ("text"), for generation (assistant.llm-url).
CREATE FUNCTION ml_kb_answer(p_question text, p_lang text, p_audience text, p_network text,
                             p_account uuid, p_shown integer, p_prefix text,
                             p_full boolean DEFAULT false)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    lang     text := CASE WHEN p_lang ~ '^[a-z]{2}$' THEN p_lang ELSE 'en' END;
    shown    integer := greatest(1, least(coalesce(p_shown, 3), 10));
    min_conf real := ml_kb_min_confidence();
    rows     jsonb := '[]';
    passages jsonb := '[]';
    follow   jsonb := '[]';
    general  jsonb := '[]';
    top_score real;
    top_id   bigint;
    top_ord  integer;
    top_slug text;
    r        record;
    n        integer := 0;
    net_slug text;
    net      jsonb;
    answered boolean;
BEGIN
    FOR r IN SELECT * FROM ml_kb_ask(p_question, lang, p_audience, shown + 3, p_account) LOOP
        n := n + 1;
        IF n = 1 THEN
            top_score := r.score; top_id := r.article_id; top_ord := r.ordinal;
            top_slug := r.slug;
        END IF;
        IF n <= shown THEN
            passages := passages || (jsonb_build_object(
                'slug', r.slug, 'title', r.title, 'heading', r.heading, 'snippet', r.snippet,
                'score', round(r.score::numeric, 3), 'language', r.language,
                'audience', r.audience, 'link', p_prefix || r.slug)
                || CASE WHEN p_full THEN jsonb_build_object('text', (
                       SELECT x.text FROM kb_passages x
                       WHERE x.article_id = r.article_id AND x.ordinal = r.ordinal))
                   ELSE '{}' END);
        ELSIF r.score >= min_conf AND jsonb_array_length(follow) < 2 THEN
            follow := follow || jsonb_build_object('text', r.title, 'slug', r.slug);
        END IF;
    END LOOP;
    answered := coalesce(top_score >= min_conf, false);
    IF answered THEN
        -- the sections of the best article that were not quoted, as questions to ask next
        SELECT coalesce(jsonb_agg(jsonb_build_object('text', h.heading, 'slug', top_slug)
                                  ORDER BY h.ordinal), '[]') || follow
        INTO follow
        FROM (SELECT p.heading, p.ordinal FROM kb_passages p
              WHERE p.article_id = top_id AND p.ordinal <> top_ord AND p.heading IS NOT NULL
              ORDER BY p.ordinal LIMIT 2) h;
    ELSE
        passages := '[]';
        follow := '[]';
        SELECT coalesce(jsonb_agg(jsonb_build_object('slug', g.slug, 'title', g.title,
                                                     'link', p_prefix || g.slug)), '[]')
        INTO general FROM ml_kb_general(lang, p_audience, 5) g;
    END IF;
    -- the network check found a problem the question may be about
    net_slug := CASE p_network WHEN 'none' THEN 'connecting-forever'
                               WHEN 'tcp' THEN 'connection-badges'
                               WHEN 'tls' THEN 'connection-badges' END;
    IF net_slug IS NOT NULL
       AND NOT passages @> jsonb_build_array(jsonb_build_object('slug', net_slug)) THEN
        SELECT jsonb_build_object('text', a.title, 'slug', a.slug) INTO net
        FROM kb_articles a WHERE a.slug = net_slug;
        IF net IS NOT NULL THEN
            follow := net || follow;
        END IF;
    END IF;
    RETURN jsonb_build_object(
        'answered', answered,
        'confidence', round(coalesce(top_score, 0)::numeric, 3),
        'passages', passages,
        'suggestions', (SELECT coalesce(jsonb_agg(x), '[]') FROM
                            (SELECT x FROM jsonb_array_elements(follow) x LIMIT 4) s),
        'general', general);
END
$$;

-- One article for GET /api/v1/assistant/articles/{slug}, as JSON (NULL: no such slug).
CREATE FUNCTION ml_kb_article(p_slug text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('slug', a.slug, 'title', a.title, 'language', a.language,
                              'audience', a.audience, 'tags', to_jsonb(a.tags),
                              'body_md', a.body_md, 'origin', a.origin,
                              'updated_at', extract(epoch FROM a.updated_at)::bigint)
    FROM kb_articles a WHERE a.slug = p_slug
$$;

-- ---------------------------------------------------------------- the admin API

-- An article file as kb/README.md describes it (a '---' header of title, slug, language,
-- audience, tags, then the Markdown body) added or replaced, as scripts/kb-import.py reads
-- it: POST /v1/kb/articles and meetlite-admin kb add / import. p_slug: the file's name without
-- .md, which the header's slug must match (NULL: not checked). outcome as
-- ml_kb_upsert_article's; 'invalid' with message for a file that does not parse.
CREATE FUNCTION ml_kb_import_file(p_text text, p_slug text, p_origin text DEFAULT 'operator')
RETURNS TABLE (outcome text, slug text, article_id bigint, passages integer, message text)
LANGUAGE plpgsql AS $$
#variable_conflict use_variable
DECLARE
    t     text := replace(coalesce(p_text, ''), E'\r\n', E'\n');
    stop  integer;
    line  text;
    n     integer := 1;
    key   text;
    val   text;
    meta  jsonb := '{}';
    body  text;
    tags  text[];
    u     record;
BEGIN
    IF left(t, 4) <> E'---\n' THEN
        RETURN QUERY SELECT 'invalid', p_slug, NULL::bigint, NULL::integer,
                            'the file must open with a ''---'' header line';
        RETURN;
    END IF;
    stop := position(E'\n---\n' IN substr(t, 4));
    IF stop = 0 THEN
        RETURN QUERY SELECT 'invalid', p_slug, NULL::bigint, NULL::integer,
                            'the header has no closing ''---'' line';
        RETURN;
    END IF;
    FOREACH line IN ARRAY string_to_array(substr(t, 5, stop - 2), E'\n') LOOP
        n := n + 1;
        CONTINUE WHEN btrim(line) = '';
        key := btrim(split_part(line, ':', 1));
        IF position(':' IN line) = 0
           OR key NOT IN ('title', 'slug', 'language', 'audience', 'tags') THEN
            RETURN QUERY SELECT 'invalid', p_slug, NULL::bigint, NULL::integer,
                format('header line %s: expected one of title, slug, language, audience, tags, then '':''', n);
            RETURN;
        END IF;
        IF meta ? key THEN
            RETURN QUERY SELECT 'invalid', p_slug, NULL::bigint, NULL::integer,
                                format('header line %s: %s given twice', n, key);
            RETURN;
        END IF;
        val := btrim(substr(line, position(':' IN line) + 1));
        meta := meta || jsonb_build_object(key, val);
    END LOOP;
    FOREACH key IN ARRAY ARRAY['title', 'slug', 'language', 'audience'] LOOP
        IF coalesce(meta ->> key, '') = '' THEN
            RETURN QUERY SELECT 'invalid', p_slug, NULL::bigint, NULL::integer,
                                format('the header needs %s', key);
            RETURN;
        END IF;
    END LOOP;
    IF p_slug IS NOT NULL AND meta ->> 'slug' <> p_slug THEN
        RETURN QUERY SELECT 'invalid', p_slug, NULL::bigint, NULL::integer,
                            format('the slug %s differs from the file''s name', meta ->> 'slug');
        RETURN;
    END IF;
    body := btrim(substr(t, stop + 8), E'\n') || E'\n';
    IF btrim(body, E' \n\t') = '' THEN
        RETURN QUERY SELECT 'invalid', meta ->> 'slug', NULL::bigint, NULL::integer,
                            'the article has no body';
        RETURN;
    END IF;
    tags := ARRAY(SELECT btrim(x) FROM unnest(string_to_array(coalesce(meta ->> 'tags', ''), ','))
                  AS x WHERE btrim(x) <> '');
    SELECT * INTO u FROM ml_kb_upsert_article(meta ->> 'slug', meta ->> 'title', body, tags,
                                              meta ->> 'language', meta ->> 'audience',
                                              p_origin);
    RETURN QUERY SELECT u.outcome, meta ->> 'slug', u.article_id, u.passages, u.message;
END
$$;

-- Every article for GET /v1/kb/articles (meetlite-admin kb list), by language and slug.
CREATE FUNCTION ml_kb_list() RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('count', count(*), 'articles', coalesce(jsonb_agg(
               jsonb_build_object('slug', a.slug, 'title', a.title, 'language', a.language,
                                  'audience', a.audience, 'origin', a.origin,
                                  'tags', to_jsonb(a.tags),
                                  'passages', (SELECT count(*) FROM kb_passages p
                                               WHERE p.article_id = a.id),
                                  'updated_at', extract(epoch FROM a.updated_at)::bigint)
               ORDER BY a.language, a.slug), '[]'))
    FROM kb_articles a
$$;

-- ml_kb_gaps as JSON for GET /v1/kb/gaps (meetlite-admin kb gaps).
CREATE FUNCTION ml_kb_gaps_json(p_days integer, p_limit integer) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('days', p_days, 'gaps', coalesce(jsonb_agg(
               jsonb_build_object('question', g.question, 'asked', g.asked,
                                  'accounts', g.accounts,
                                  'best_score', round(g.best_score::numeric, 3),
                                  'closest_article', g.closest_article,
                                  'last_asked', extract(epoch FROM g.last_asked)::bigint)
               ORDER BY g.asked DESC, g.last_asked DESC), '[]'))
    FROM ml_kb_gaps(now() - make_interval(days => p_days), p_limit) g
$$;

-- ---------------------------------------------------------------- the starter synonyms

-- How students write, mapped to how the articles are written. Operators add their own rows
-- (their school's words: "lecture hall", the name of their campus network).
INSERT INTO kb_synonyms (term, language, expansion) VALUES
    -- chat noise: greetings, pleas, fillers, contractions typed without their apostrophe
    ('hi', 'en', ''), ('hii', 'en', ''), ('hiii', 'en', ''), ('hello', 'en', ''),
    ('hey', 'en', ''), ('pls', 'en', ''), ('plz', 'en', ''), ('please', 'en', ''),
    ('thx', 'en', ''), ('thanks', 'en', ''), ('thank', 'en', ''), ('help', 'en', ''),
    ('helpp', 'en', ''), ('guys', 'en', ''), ('lol', 'en', ''), ('ok', 'en', ''),
    ('okay', 'en', ''), ('asap', 'en', ''), ('urgent', 'en', ''), ('sorry', 'en', ''),
    ('um', 'en', ''), ('uh', 'en', ''), ('hmm', 'en', ''), ('just', 'en', ''),
    ('really', 'en', ''), ('still', 'en', ''), ('anyone', 'en', ''), ('someone', 'en', ''),
    ('somebody', 'en', ''), ('something', 'en', ''), ('anything', 'en', ''),
    ('dont', 'en', ''), ('doesnt', 'en', ''), ('didnt', 'en', ''), ('cant', 'en', ''),
    ('cannot', 'en', ''), ('isnt', 'en', ''), ('wont', 'en', ''), ('wasnt', 'en', ''),
    ('arent', 'en', ''), ('couldnt', 'en', ''), ('havent', 'en', ''), ('hasnt', 'en', ''),
    ('don', 'en', ''), ('doesn', 'en', ''), ('didn', 'en', ''), ('isn', 'en', ''),
    ('won', 'en', ''), ('wasn', 'en', ''), ('aren', 'en', ''), ('couldn', 'en', ''),
    ('haven', 'en', ''), ('hasn', 'en', ''), ('im', 'en', ''), ('ive', 'en', ''),
    ('whats', 'en', ''), ('hows', 'en', ''), ('u', 'en', ''), ('ur', 'en', ''),
    ('ya', 'en', ''), ('want', 'en', ''), ('need', 'en', ''), ('try', 'en', ''),
    ('tried', 'en', ''), ('trying', 'en', ''), ('keep', 'en', ''), ('keeps', 'en', ''),
    ('get', 'en', ''), ('got', 'en', ''), ('thing', 'en', ''), ('stuff', 'en', ''),
    ('meetlite', 'en', ''), ('problem', 'en', ''), ('problems', 'en', ''), ('issue', 'en', ''),
    ('issues', 'en', ''), ('fix', 'en', ''),
    -- devices
    ('cam', 'en', 'camera'), ('webcam', 'en', 'camera'), ('webcamera', 'en', 'camera'),
    ('video', 'en', 'camera'), ('face', 'en', 'camera'), ('picture', 'en', 'camera'),
    ('mic', 'en', 'microphone'), ('mike', 'en', 'microphone'), ('micro', 'en', 'microphone'),
    ('headset', 'en', 'microphone headphones'), ('earphones', 'en', 'headphones'),
    ('earbuds', 'en', 'headphones'), ('airpods', 'en', 'headphones bluetooth'),
    ('speaker', 'en', 'sound'), ('speakers', 'en', 'sound'), ('audio', 'en', 'sound'),
    ('voice', 'en', 'microphone hear'), ('hear', 'en', 'sound'), ('noise', 'en', 'echo'),
    ('feedback', 'en', 'echo'), ('blank', 'en', 'black'), ('dark', 'en', 'black'),
    ('device', 'en', 'camera microphone'),
    -- what goes wrong
    ('frozen', 'en', 'freezes'), ('freezing', 'en', 'freezes'), ('lag', 'en', 'freezes'),
    ('laggy', 'en', 'freezes'), ('lagging', 'en', 'freezes'), ('choppy', 'en', 'freezes'),
    ('stutters', 'en', 'freezes'), ('pixelated', 'en', 'blurry'), ('stuck', 'en', 'connecting'),
    ('loading', 'en', 'connecting'), ('spinning', 'en', 'connecting'),
    ('hangs', 'en', 'connecting'), ('popup', 'en', 'prompt permission'),
    ('denied', 'en', 'blocked refused'), ('deny', 'en', 'block'), ('refused', 'en', 'blocked'),
    ('asks', 'en', 'prompt'), ('broken', 'en', 'working'),
    -- people and roles
    ('teacher', 'en', 'host'), ('professor', 'en', 'host'), ('instructor', 'en', 'host'),
    ('tutor', 'en', 'host'), ('lecturer', 'en', 'host'), ('organizer', 'en', 'host'),
    ('organiser', 'en', 'host'), ('moderator', 'en', 'admin'), ('cohost', 'en', 'admin'),
    ('classmate', 'en', 'participant'), ('classmates', 'en', 'participants'),
    ('student', 'en', 'participant'), ('students', 'en', 'participants'),
    ('people', 'en', 'participants'),
    ('kick', 'en', 'remove'), ('ban', 'en', 'remove'), ('expel', 'en', 'remove'),
    ('boot', 'en', 'remove'), ('silence', 'en', 'mute'),
    -- meetings
    ('class', 'en', 'meeting'), ('lecture', 'en', 'meeting'), ('lesson', 'en', 'meeting'),
    ('call', 'en', 'meeting'), ('session', 'en', 'meeting'), ('room', 'en', 'meeting'),
    ('conference', 'en', 'meeting'), ('enter', 'en', 'join'), ('attend', 'en', 'join'),
    ('url', 'en', 'link'), ('invite', 'en', 'link share'), ('invitation', 'en', 'link share'),
    ('id', 'en', 'code'), ('extend', 'en', 'duration'), ('longer', 'en', 'duration'),
    ('capacity', 'en', 'limit'), ('max', 'en', 'limit'), ('maximum', 'en', 'limit'),
    ('screenshare', 'en', 'screen share'), ('screensharing', 'en', 'screen share'),
    ('present', 'en', 'share screen'), ('presentation', 'en', 'share screen'),
    ('slides', 'en', 'share screen'), ('hand', 'en', 'raise hand'), ('passcode', 'en', 'passcode'),
    -- accounts
    ('login', 'en', 'sign in'), ('logon', 'en', 'sign in'), ('signin', 'en', 'sign in'),
    ('signup', 'en', 'sign up create account'), ('register', 'en', 'create account'),
    ('registration', 'en', 'create account'), ('pw', 'en', 'password'),
    ('pwd', 'en', 'password'), ('passwd', 'en', 'password'), ('pass', 'en', 'password'),
    ('forgotten', 'en', 'forgot'), ('gmail', 'en', 'google'), ('sso', 'en', 'google'),
    ('oauth', 'en', 'google oidc'), ('logged', 'en', 'signed'),
    -- networks
    ('wifi', 'en', 'network'), ('internet', 'en', 'network'), ('wlan', 'en', 'wifi network'),
    ('proxy', 'en', 'firewall'), ('blocked', 'en', 'block firewall'),
    ('dorm', 'en', 'campus'), ('university', 'en', 'campus'), ('uni', 'en', 'campus'),
    ('college', 'en', 'campus'), ('school', 'en', 'campus'), ('hotel', 'en', 'firewall'),
    ('office', 'en', 'firewall'), ('corporate', 'en', 'firewall'), ('p2p', 'en', 'direct'),
    ('nordvpn', 'en', 'vpn'), ('expressvpn', 'en', 'vpn'), ('protonvpn', 'en', 'vpn'),
    ('wireguard', 'en', 'vpn'), ('openvpn', 'en', 'vpn'), ('anyconnect', 'en', 'vpn'),
    ('peer', 'en', 'direct'),
    -- browsers and devices
    ('chrome', 'en', 'chromium'), ('edge', 'en', 'chromium'), ('brave', 'en', 'chromium'),
    ('opera', 'en', 'chromium'), ('vivaldi', 'en', 'chromium'), ('iphone', 'en', 'phone ios'),
    ('ipad', 'en', 'tablet ios'), ('android', 'en', 'phone'), ('mobile', 'en', 'phone'),
    ('smartphone', 'en', 'phone'), ('cellphone', 'en', 'phone'), ('cell', 'en', 'phone'),
    ('macbook', 'en', 'mac macos'), ('mac', 'en', 'macos'),
    -- privacy
    ('privacy', 'en', 'stored data'), ('gdpr', 'en', 'stored data privacy'),
    ('recorded', 'en', 'recording stored'), ('record', 'en', 'recording stored'),
    ('encrypted', 'en', 'encryption'), ('encrypt', 'en', 'encryption'),
    ('secure', 'en', 'encrypted'), ('spy', 'en', 'see privacy'),
    -- operators
    ('grafana', 'en', 'metrics'), ('monitoring', 'en', 'metrics alerts'),
    ('cert', 'en', 'certificate'), ('certbot', 'en', 'certificate letsencrypt'),
    ('ssl', 'en', 'tls'), ('https', 'en', 'https tls'), ('nginx', 'en', 'proxy'),
    ('haproxy', 'en', 'proxy'), ('caddy', 'en', 'proxy'), ('upgrade', 'en', 'maintenance'),
    ('reboot', 'en', 'maintenance restart'), ('turnserver', 'en', 'coturn'),
    ('kubernetes', 'en', 'nodes'), ('cluster', 'en', 'nodes'), ('scale', 'en', 'nodes'),
    -- phrases (the longest that fits is taken first)
    ('log in', 'en', 'sign in'), ('log on', 'en', 'sign in'), ('logged out', 'en', 'signed out'),
    ('sign up', 'en', 'create account'), ('black screen', 'en', 'camera black'),
    ('no video', 'en', 'camera black'), ('no picture', 'en', 'camera black'),
    ('no sound', 'en', 'hear sound'), ('no audio', 'en', 'hear sound'),
    ('share screen', 'en', 'screen share'), ('share my screen', 'en', 'screen share'),
    ('screen share', 'en', 'screen share'), ('raise hand', 'en', 'raise hand'),
    ('raise my hand', 'en', 'raise hand'), ('hand up', 'en', 'raise hand'),
    ('waiting room', 'en', 'waiting room'), ('kick out', 'en', 'remove'),
    ('throw out', 'en', 'remove'), ('get in', 'en', 'join'), ('go in', 'en', 'join'),
    ('come back', 'en', 'rejoin'), ('end call', 'en', 'end meeting'),
    ('how long', 'en', 'duration'), ('time limit', 'en', 'duration'),
    ('too many', 'en', 'too many'), ('e mail', 'en', 'email'), ('wi fi', 'en', 'wifi'),
    ('ip address', 'en', 'ip address'),
    -- what the client's messages say, as students copy them
    ('is over', 'en', 'over expired'), ('time ran out', 'en', 'expired over'),
    ('has ended', 'en', 'ended'), ('is full', 'en', 'full'),
    ('open elsewhere', 'en', 'too many tabs'), ('turned off', 'en', 'off muted'),
    -- German
    ('hallo', 'de', ''), ('bitte', 'de', ''), ('danke', 'de', ''), ('hilfe', 'de', ''),
    ('geht', 'de', ''), ('klappt', 'de', ''), ('funktioniert', 'de', ''),
    ('webcam', 'de', 'kamera'), ('cam', 'de', 'kamera'), ('bild', 'de', 'kamera video'),
    ('mikro', 'de', 'mikrofon'), ('mic', 'de', 'mikrofon'), ('ton', 'de', 'mikrofon hören'),
    ('laedt', 'de', 'verbindung'), ('verbindet', 'de', 'verbindung'),
    ('teilnehmen', 'de', 'beitreten'), ('rein', 'de', 'beitreten'),
    -- Spanish
    ('hola', 'es', ''), ('ayuda', 'es', ''), ('gracias', 'es', ''), ('funciona', 'es', ''),
    ('por favor', 'es', ''), ('webcam', 'es', 'camara'), ('cam', 'es', 'camara'),
    ('escuchan', 'es', 'oyen'), ('escucha', 'es', 'oye'), ('escuchar', 'es', 'oir'),
    ('micro', 'es', 'microfono'), ('mic', 'es', 'microfono'), ('carga', 'es', 'conectando'),
    ('entrar', 'es', 'unirse'), ('link', 'es', 'enlace'),
    -- French
    ('bonjour', 'fr', ''), ('salut', 'fr', ''), ('merci', 'fr', ''), ('svp', 'fr', ''),
    ('stp', 'fr', ''), ('aide', 'fr', ''), ('marche', 'fr', ''), ('fonctionne', 'fr', ''),
    ('webcam', 'fr', 'camera'), ('cam', 'fr', 'camera'), ('camera', 'fr', 'camera'),
    ('entendent', 'fr', 'entendre micro'), ('entend', 'fr', 'entendre micro'),
    ('charge', 'fr', 'connexion'), ('entrer', 'fr', 'rejoindre'), ('lien', 'fr', 'lien');
