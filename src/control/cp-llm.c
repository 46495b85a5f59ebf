/* Optional generation for the help assistant (issue #18, assistant.llm-url): the passages a
 * question retrieved are sent to an OpenAI-compatible chat completions endpoint (llama.cpp's
 * server, vLLM, a hosted one) with the instruction to answer from them only and cite them as
 * [n]; the answer gains the generated text, or says why there is none and stays the retrieval
 * answer. The calls run on threads of their own (http_fetch, blocking, bounded by
 * assistant.llm-timeout), never on the control plane's loop; a request waits for its
 * generation with http_hold and gets it back through http_post. */
#include "config.h"

#include "control/cp-int.h"

#include <stdlib.h>
#include <string.h>

#define SUBSYS "api"
#define CP_LLM_THREADS 2
#define CP_LLM_QUEUE_MAX 64            /* questions waiting for a thread; more: retrieval only */
#define CP_LLM_ANSWER_MAX (256 * 1024) /* bytes of the endpoint's answer read */
#define CP_LLM_TEXT_MAX 4000           /* bytes of generated text kept */
#define CP_LLM_KEY_MAX 4096

struct cp_llm_job {
    struct http_done done; /* first: http_post hands it back */
    struct cp_llm_job *next;
    char *body;     /* the chat completions request (JSON) */
    json_t *answer; /* the retrieval answer (owned), completed on the server thread */
    size_t npassages;
    const char *error; /* why there is no generated text (a static string), or NULL */
    char *text;        /* the generated text (malloc'd) */
    bool cited[16];    /* passages [n] the text cites (1..npassages) */
};

struct cp_llm {
    char *url, *key, *model; /* owned; key wiped on free */
    long timeout_ms;
    pthread_t threads[CP_LLM_THREADS];
    size_t nthreads;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct cp_llm_job *head, *tail;
    size_t queued;
    bool stop; /* under mu; read unlocked by transfers in flight (atomic) */
};

/* ------------------------------------------------------------------ the request */

/* The chat completions body for a question and its passages (caller frees), or NULL. */
static char *request_body(const struct cp_llm *l, const char *question, json_t *passages)
{
    size_t cap = 1024 + strlen(question);
    size_t i;
    json_t *p;
    json_array_foreach(passages, i, p)
    {
        const char *t = json_string_value(json_object_get(p, "text"));
        cap += 512 + (t ? strlen(t) : 0);
    }
    char *user = ml_xmalloc(cap);
    size_t off = ml_snprintf(user, cap, "Passages:\n");
    json_array_foreach(passages, i, p)
    {
        const char *title = json_string_value(json_object_get(p, "title"));
        const char *heading = json_string_value(json_object_get(p, "heading"));
        const char *text = json_string_value(json_object_get(p, "text"));
        if (!text)
            text = json_string_value(json_object_get(p, "snippet"));
        off += ml_snprintf(user + off, cap - off, "[%zu] %s%s%s\n%s\n\n", i + 1, title ? title : "",
                           heading ? " - " : "", heading ? heading : "", text ? text : "");
    }
    ml_snprintf(user + off, cap - off, "Question: %s", question);
    static const char *const system =
        "You are the help assistant of meetlite, a video meeting service. Answer the question "
        "using only the numbered passages. Cite every passage you use as [n]. If the passages do "
        "not answer the question, say so. Be brief: at most 120 words, plain text.";
    json_t *req = json_pack("{s:s,s:[{s:s,s:s},{s:s,s:s}],s:f,s:i,s:b}", "model", l->model,
                            "messages", "role", "system", "content", system, "role", "user",
                            "content", user, "temperature", 0.2, "max_tokens", 400, "stream", 0);
    free(user);
    char *s = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    return s;
}

/* ------------------------------------------------------------------ the transfer */

/* The generated text of an endpoint's answer into job (or job->error). */
static void read_answer(struct cp_llm_job *job, const char *text, size_t len)
{
    json_t *doc = json_loadb(text, len, 0, NULL);
    json_t *choice = json_array_get(json_object_get(doc, "choices"), 0);
    const char *content =
        json_string_value(json_object_get(json_object_get(choice, "message"), "content"));
    size_t n = content ? strlen(content) : 0;
    while (n && (content[n - 1] == ' ' || content[n - 1] == '\n'))
        n--;
    if (!content || n == 0) {
        job->error = "malformed";
    } else if (n > CP_LLM_TEXT_MAX) {
        job->error = "too_long";
    } else {
        size_t chars;
        if (!ml_utf8_valid(content, n, &chars)) {
            job->error = "malformed";
        } else {
            /* the citations: [n] of a passage that was sent */
            bool any = false;
            for (const char *p = content; (p = strchr(p, '[')) != NULL && p < content + n; p++) {
                char *end;
                long k = strtol(p + 1, &end, 10);
                if (end != p + 1 && *end == ']' && k >= 1 && (size_t)k <= job->npassages &&
                    k <= (long)ML_ARRAY_LEN(job->cited)) {
                    job->cited[k - 1] = true;
                    any = true;
                }
            }
            if (!any) {
                job->error =
                    "uncited"; /* an answer that names no passage may come from elsewhere */
            } else {
                job->text = ml_xmalloc(n + 1);
                memcpy(job->text, content, n);
                job->text[n] = 0;
            }
        }
    }
    json_decref(doc);
}

static void generate(struct cp_llm *l, struct http_fetch_conn *conn, struct cp_llm_job *job)
{
    char auth[CP_LLM_KEY_MAX + 32];
    if (l->key)
        ml_snprintf(auth, sizeof auth, "Authorization: Bearer %s", l->key);
    const char *const headers[] = {"Content-Type: application/json", l->key ? auth : NULL, NULL};
    /* no redirects: the key is for this endpoint */
    struct http_fetch_req req = {.url = l->url,
                                 .body = job->body,
                                 .body_len = strlen(job->body),
                                 .headers = headers,
                                 .protocols = "http,https",
                                 .timeout_ms = l->timeout_ms,
                                 .max_body = CP_LLM_ANSWER_MAX,
                                 .abort = &l->stop};
    struct http_fetch_resp resp;
    enum http_fetch_err e = http_fetch(conn, &req, &resp);
    ml_wipe(auth, sizeof auth);
    if (e == HTTP_FETCH_TIMEOUT)
        job->error = "timeout";
    else if (e != HTTP_FETCH_OK || resp.status != 200)
        job->error = "error";
    else
        read_answer(job, resp.body ? resp.body : "", resp.body_len);
    if (job->error)
        ML_WARN(SUBSYS, "assistant generation failed (%s): %s, HTTP %ld", job->error,
                e == HTTP_FETCH_OK || e == HTTP_FETCH_STATUS ? "answered" : resp.err, resp.status);
    http_fetch_resp_free(&resp);
}

/* ------------------------------------------------------------------ completion */

/* On the server thread: the answer with what generation gave. */
static void job_done(struct http_done *d)
{
    struct cp_llm_job *job = (struct cp_llm_job *)d;
    json_t *a = job->answer;
    if (job->text) {
        json_t *cites = json_array();
        json_t *passages = json_object_get(a, "passages");
        for (size_t i = 0; i < job->npassages && i < ML_ARRAY_LEN(job->cited); i++) {
            json_t *p = json_array_get(passages, i);
            if (job->cited[i] && p)
                json_array_append_new(cites, json_pack("{s:I,s:O,s:O,s:O}", "n", (json_int_t)i + 1,
                                                       "slug", json_object_get(p, "slug"), "title",
                                                       json_object_get(p, "title"), "link",
                                                       json_object_get(p, "link")));
        }
        json_object_set_new(a, "generated",
                            json_pack("{s:s,s:o}", "text", job->text, "citations", cites));
        json_object_set_new(a, "mode", json_string("generated"));
    } else {
        json_object_set_new(a, "mode", json_string("retrieval"));
        json_object_set_new(a, "generation_error", json_string(job->error ? job->error : "error"));
    }
    job->answer = NULL;
    http_reply_json(d->req, 200, a);
}

static void job_free(struct http_done *d)
{
    struct cp_llm_job *job = (struct cp_llm_job *)d;
    json_decref(job->answer);
    free(job->body);
    free(job->text);
    free(job);
}

static void *worker(void *arg)
{
    struct cp_llm *l = arg;
    struct http_fetch_conn *conn = http_fetch_conn_new(); /* the endpoint's, kept open */
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->head && !l->stop)
            pthread_cond_wait(&l->cond, &l->mu);
        struct cp_llm_job *job = l->head;
        if (!job)
            break; /* stopping, nothing left */
        l->head = job->next;
        if (!l->head)
            l->tail = NULL;
        l->queued--;
        bool stopping = l->stop;
        pthread_mutex_unlock(&l->mu);
        if (stopping)
            job->error = "stopping";
        else
            generate(l, conn, job);
        http_post(&job->done);
        pthread_mutex_lock(&l->mu);
    }
    pthread_mutex_unlock(&l->mu);
    http_fetch_conn_free(conn);
    return NULL;
}

/* ------------------------------------------------------------------ the API */

bool cp_llm_ask(struct cp_llm *l, struct http_req *req, const char *question, json_t *answer)
{
    json_t *passages = json_object_get(answer, "passages");
    struct cp_llm_job *job = ml_xcalloc(1, sizeof *job);
    job->done.req = req;
    job->done.fn = job_done;
    job->done.free = job_free;
    job->npassages = json_array_size(passages);
    job->body = request_body(l, question, passages);
    /* the full passages went to the endpoint; the client gets the snippets */
    size_t i;
    json_t *p;
    json_array_foreach(passages, i, p) json_object_del(p, "text");
    job->answer = answer;
    pthread_mutex_lock(&l->mu);
    bool full = l->queued >= CP_LLM_QUEUE_MAX || l->stop || !job->body;
    if (!full) {
        if (l->tail)
            l->tail->next = job;
        else
            l->head = job;
        l->tail = job;
        l->queued++;
        http_hold(req);
        pthread_cond_signal(&l->cond);
    }
    pthread_mutex_unlock(&l->mu);
    if (full) {
        job->answer = NULL; /* the caller keeps it */
        json_object_set_new(answer, "mode", json_string("retrieval"));
        json_object_set_new(answer, "generation_error", json_string("busy"));
        job_free(&job->done);
        return false;
    }
    return true;
}

char *cp_llm_read_key(const char *name, char *err, size_t errlen)
{
    char path[4096], why[400];
    char *k = NULL;
    if (ml_secret_path(name, path, sizeof path, why, sizeof why) == 0)
        k = ml_secret_read(path, CP_LLM_KEY_MAX - 1, false, NULL, why, sizeof why);
    if (!k)
        ml_err(err, errlen, "assistant.llm-key-file: %s", why);
    return k;
}

struct cp_llm *cp_llm_new(const struct cp_assistant_config *cfg, char *err, size_t errlen)
{
    struct cp_llm *l = ml_xcalloc(1, sizeof *l);
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cond, NULL);
    l->url = ml_xstrdup(cfg->llm_url);
    l->model = ml_xstrdup(cfg->llm_model && *cfg->llm_model ? cfg->llm_model : "default");
    l->timeout_ms = (long)cfg->llm_timeout_ms;
    if (cfg->llm_key_file && *cfg->llm_key_file) {
        l->key = cp_llm_read_key(cfg->llm_key_file, err, errlen);
        if (!l->key) {
            cp_llm_free(l);
            return NULL;
        }
    }
    for (size_t i = 0; i < CP_LLM_THREADS; i++) {
        if (pthread_create(&l->threads[i], NULL, worker, l) != 0) {
            ml_err(err, errlen, "cannot start the assistant's generation threads");
            cp_llm_free(l);
            return NULL;
        }
        l->nthreads++;
    }
    return l;
}

void cp_llm_free(struct cp_llm *l)
{
    if (!l)
        return;
    pthread_mutex_lock(&l->mu);
    __atomic_store_n(&l->stop, true, __ATOMIC_RELAXED);
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->mu);
    for (size_t i = 0; i < l->nthreads; i++)
        pthread_join(l->threads[i], NULL);
    /* the workers drained the queue (each job posted back with "stopping") */
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cond);
    free(l->url);
    free(l->model);
    if (l->key) {
        ml_wipe(l->key, strlen(l->key));
        free(l->key);
    }
    free(l);
}
