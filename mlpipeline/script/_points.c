/* mlpipeline.script._points: log_metric's point taker in a version's child process, in C.
 *
 * ``Points(check, catch_up, most, low, high, wake=None, wake_bytes=1 MiB)`` is what ``log_metric(name,
 * value, step=None, split="train")`` calls in a child (report.PythonPoints is the same in Python). The usual
 * point -- an exact float, no step or an exact int in [low, high], a (name, split) pair checked before -- is
 * written straight into a byte buffer as marshal (version 4) writes the row tuple; any other goes through
 * ``check`` (lifecycle.metric_row), which converts it or raises. ``send(fd, prefix, suffix)`` writes the
 * waiting rows to the event pipe as ``pack_rows`` packs them (base64 of a marshalled list of (name, value,
 * step, split) tuples), encoding and writing with the GIL released; ``take()`` returns the same text.
 *
 * ``wake()`` is called once a batch reaches ``wake_bytes`` (the reporter's flusher sends it), and
 * ``catch_up()`` when ``most`` rows wait (the loop itself sends them). Small batches let the buffers be
 * used in turn, their memory already mapped and in cache: a page touched for the first time costs
 * microseconds on a VM, as much as a few hundred points.
 *
 * The (name, split) strings of a batch are written once and referred to after (marshal's FLAG_REF and
 * TYPE_REF), as marshal.dumps does. Every buffer change happens with the GIL held and without calling
 * anything that could run Python code in between, so a thread switch never sees half a row.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>

/* what a process the version forked is told once, at its first point (report.FORKED_NOTE says the same) */
#define FORKED_NOTE "mlpipeline: log_metric in a process the version started is not recorded; log from the " \
    "version's own process (send values back to it, e.g. through a multiprocessing Queue)"

/* A double as marshal writes it: 8 bytes, little-endian IEEE 754. */
static inline int
pack_double(PyObject *value, unsigned char *out)
{
#if PY_VERSION_HEX >= 0x030B0000
    return PyFloat_Pack8(PyFloat_AS_DOUBLE(value), (char *)out, 1);
#else
    return _PyFloat_Pack8(PyFloat_AS_DOUBLE(value), out, 1);
#endif
}

/* marshal's type codes (Python/marshal.c) */
#define M_NONE 'N'
#define M_INT 'i'
#define M_LONG 'l'
#define M_FLOAT 'g'
#define M_SHORT_ASCII 'z'
#define M_ASCII 'a'
#define M_UNICODE 'u'
#define M_SMALL_TUPLE ')'
#define M_LIST '['
#define M_REF 'r'
#define M_FLAG_REF 0x80

#define HEADER 5            /* '[' and the row count, written in front of the rows as they are sent */
#define CACHE_SIZE 64       /* (name, split) objects seen last, by identity */
#define MAX_TEXTS 20000     /* distinct strings kept encoded; more are encoded on each use */
#define MAX_PAIRS 10000     /* distinct (name, split) pairs remembered as checked */
#define KEEP_BYTES (16 << 20)  /* a sent batch's buffer up to this size is kept for the next one */

typedef struct {
    PyObject *literal;      /* bytes: the string as marshal writes it, type code without FLAG_REF */
    Py_ssize_t batch;       /* the batch it was last written in ... */
    int32_t ref;            /* ... and its reference number there */
} Text;

typedef struct {
    PyObject *name, *split; /* strong references, so an address is never reused for another string */
    Py_ssize_t name_id, split_id;
} Seen;

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *check;        /* metric_row(name, value, step, split) -> a checked 4-tuple, or raises */
    PyObject *catch_up;     /* called with no arguments when `most` rows wait */
    PyObject *wake;         /* called with no arguments when a batch reaches `wake_bytes`; or NULL */
    Py_ssize_t most, wake_bytes;
    int woken;              /* wake() called for this batch */
    long long low, high;
    int dropped;            /* a forked child: points go nowhere (1: not said yet, 2: said) */
    char *buf;              /* HEADER bytes, then the rows (PyMem_Raw: freed without the GIL) */
    Py_ssize_t len, cap, rows;
    char *spare;            /* the last batch's buffer, for the next one; or NULL */
    Py_ssize_t spare_cap;
    char *out;              /* what send() wrote last time, kept for the next; or NULL */
    Py_ssize_t out_cap;
    Py_ssize_t batch;       /* counts the batches sent: which Text refs are current */
    int32_t refs;           /* references handed out in this batch */
    PyObject *ids;          /* dict: str -> int, its index in texts */
    PyObject *pairs;        /* dict: (name, split) -> int, name_id << 32 | split_id */
    Text *texts;
    Py_ssize_t ntexts, captexts;
    Seen seen[CACHE_SIZE];
} Points;

static PyObject *default_split, *kw_name, *kw_value, *kw_step, *kw_split;

/* --- the buffer ------------------------------------------------------------------------------------- */

/* Room for `more` bytes; -1 with MemoryError set. Calls nothing that runs Python code. */
static int
reserve(Points *self, Py_ssize_t more)
{
    if (self->buf == NULL && self->spare != NULL) {
        self->buf = self->spare;
        self->cap = self->spare_cap;
        self->len = HEADER;
        self->spare = NULL;
    }
    if (self->buf == NULL) {
        Py_ssize_t cap = 1 << 16;
        while (cap < HEADER + more)
            cap *= 2;
        self->buf = PyMem_RawMalloc(cap);
        if (self->buf == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        self->cap = cap;
        self->len = HEADER;
    }
    if (self->len + more > self->cap) {
        Py_ssize_t cap = self->cap;
        while (cap < self->len + more) {
            if (cap > PY_SSIZE_T_MAX / 2) {
                PyErr_NoMemory();
                return -1;
            }
            cap *= 2;
        }
        char *grown = PyMem_RawRealloc(self->buf, cap);
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        self->buf = grown;
        self->cap = cap;
    }
    return 0;
}

static inline char *
put_int32(char *p, int32_t value)
{
    uint32_t u = (uint32_t)value;
    p[0] = (char)(u & 0xff);
    p[1] = (char)((u >> 8) & 0xff);
    p[2] = (char)((u >> 16) & 0xff);
    p[3] = (char)((u >> 24) & 0xff);
    return p + 4;
}

/* A step as marshal writes an int: TYPE_INT when it fits 32 bits, else TYPE_LONG in 15-bit digits (their
 * count negative for a negative number). */
static char *
put_step(char *p, long long step)
{
    if (step >= INT32_MIN && step <= INT32_MAX) {
        *p++ = M_INT;
        return put_int32(p, (int32_t)step);
    }
    unsigned long long u = step < 0 ? 0ULL - (unsigned long long)step : (unsigned long long)step;
    int32_t digits = 0;
    *p++ = M_LONG;
    char *count = p;
    p += 4;
    while (u) {
        *p++ = (char)(u & 0xff);
        *p++ = (char)((u >> 8) & 0x7f);
        u >>= 15;
        digits++;
    }
    put_int32(count, step < 0 ? -digits : digits);
    return p;
}
#define MAX_STEP_BYTES 15   /* 'l', the digit count, five 15-bit digits of a 64-bit number */

/* --- strings ---------------------------------------------------------------------------------------- */

/* `text` as marshal writes a str (type code without FLAG_REF), as new bytes; NULL with an error set. */
static PyObject *
literal_of(PyObject *text)
{
    PyObject *utf8 = NULL, *literal;
    const char *data;
    Py_ssize_t size;
    char code;

#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(text) < 0)
        return NULL;
#endif
    if (PyUnicode_IS_ASCII(text)) {
        data = (const char *)PyUnicode_1BYTE_DATA(text);
        size = PyUnicode_GET_LENGTH(text);
        code = size < 256 ? M_SHORT_ASCII : M_ASCII;
    }
    else {
        utf8 = PyUnicode_AsEncodedString(text, "utf-8", "surrogatepass");
        if (utf8 == NULL)
            return NULL;
        data = PyBytes_AS_STRING(utf8);
        size = PyBytes_GET_SIZE(utf8);
        code = M_UNICODE;
    }
    if (size > INT32_MAX) {
        Py_XDECREF(utf8);
        PyErr_SetString(PyExc_ValueError, "a metric's name or split too long to send");
        return NULL;
    }
    Py_ssize_t head = code == M_SHORT_ASCII ? 2 : 5;
    literal = PyBytes_FromStringAndSize(NULL, head + size);
    if (literal != NULL) {
        char *p = PyBytes_AS_STRING(literal);
        p[0] = code;
        if (code == M_SHORT_ASCII)
            p[1] = (char)size;
        else
            put_int32(p + 1, (int32_t)size);
        memcpy(p + head, data, size);
    }
    Py_XDECREF(utf8);
    return literal;
}

/* The index of `text` in self->texts, added when new; -1 when the table is full (the caller encodes it
 * itself), -2 with an error set. */
static Py_ssize_t
text_id(Points *self, PyObject *text)
{
    PyObject *found = PyDict_GetItemWithError(self->ids, text);   /* borrowed */
    if (found != NULL)
        return PyLong_AsSsize_t(found);
    if (PyErr_Occurred())
        return -2;
    if (self->ntexts >= MAX_TEXTS)
        return -1;
    if (self->ntexts == self->captexts) {
        Py_ssize_t cap = self->captexts ? self->captexts * 2 : 16;
        Text *grown = PyMem_Realloc(self->texts, cap * sizeof(Text));
        if (grown == NULL) {
            PyErr_NoMemory();
            return -2;
        }
        self->texts = grown;
        self->captexts = cap;
    }
    PyObject *literal = literal_of(text);
    if (literal == NULL)
        return -2;
    PyObject *index = PyLong_FromSsize_t(self->ntexts);
    if (index == NULL || PyDict_SetItem(self->ids, text, index) < 0) {
        Py_XDECREF(index);
        Py_DECREF(literal);
        return -2;
    }
    Py_DECREF(index);
    Text *entry = &self->texts[self->ntexts];
    entry->literal = literal;
    entry->batch = -1;
    entry->ref = 0;
    return self->ntexts++;
}

/* Bytes a text takes at most in the buffer. */
static inline Py_ssize_t
text_room(const Text *text)
{
    Py_ssize_t size = PyBytes_GET_SIZE(text->literal);
    return size > 5 ? size : 5;
}

/* Write a text: its first use in this batch in full (flagged as a reference target), later ones as a
 * reference to it. */
static inline char *
put_text(Points *self, char *p, Text *text)
{
    if (text->batch == self->batch) {
        *p++ = M_REF;
        return put_int32(p, text->ref);
    }
    Py_ssize_t size = PyBytes_GET_SIZE(text->literal);
    memcpy(p, PyBytes_AS_STRING(text->literal), size);
    p[0] = (char)(p[0] | M_FLAG_REF);
    text->batch = self->batch;
    text->ref = self->refs++;
    return p + size;
}

/* --- rows ------------------------------------------------------------------------------------------- */

/* The value as marshal writes it (None, or TYPE_BINARY_FLOAT) into `out`; its size, or -1 with an error. */
static int
value_bytes(PyObject *value, unsigned char out[9])
{
    if (value == NULL) {
        out[0] = M_NONE;
        return 1;
    }
    out[0] = M_FLOAT;
    return pack_double(value, out + 1) < 0 ? -1 : 9;
}

/* One row; value NULL means None. 0, or -1 with an error set (and nothing written). */
static int
put_row(Points *self, Text *name, PyObject *value, int has_step, long long step, Text *split)
{
    unsigned char number[9];
    int size = value_bytes(value, number);
    if (size < 0)
        return -1;
    if (reserve(self, 2 + text_room(name) + size + MAX_STEP_BYTES + text_room(split)) < 0)
        return -1;
    char *p = self->buf + self->len;
    *p++ = M_SMALL_TUPLE;
    *p++ = 4;
    p = put_text(self, p, name);
    memcpy(p, number, size);
    p += size;
    if (has_step)
        p = put_step(p, step);
    else
        *p++ = M_NONE;
    p = put_text(self, p, split);
    self->len = p - self->buf;
    self->rows++;
    return 0;
}

static inline Seen *
seen_slot(Points *self, PyObject *name, PyObject *split)
{
    uintptr_t h = ((uintptr_t)name >> 4) ^ ((uintptr_t)split >> 6) ^ ((uintptr_t)name >> 10);
    return &self->seen[h & (CACHE_SIZE - 1)];
}

static void
remember(Seen *slot, PyObject *name, PyObject *split, Py_ssize_t name_id, Py_ssize_t split_id)
{
    PyObject *old_name = slot->name, *old_split = slot->split;
    Py_INCREF(name);
    Py_INCREF(split);
    slot->name = name;
    slot->split = split;
    slot->name_id = name_id;
    slot->split_id = split_id;
    Py_XDECREF(old_name);  /* str objects: freeing one runs no Python code */
    Py_XDECREF(old_split);
}

/* The point through `check`: converted, recorded, its pair remembered as good. 0, or -1 with an error. */
static int
take_slow(Points *self, PyObject *name, PyObject *value, PyObject *step, PyObject *split)
{
    if (self->check == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the point taker was cleared");
        return -1;
    }
    PyObject *args[4] = {name, value, step, split};
    PyObject *row = PyObject_Vectorcall(self->check, args, 4, NULL);
    if (row == NULL)
        return -1;
    int result = -1;
    Text loose[2] = {{NULL, -1, 0}, {NULL, -1, 0}};
    if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != 4) {
        PyErr_SetString(PyExc_TypeError, "the point check returned no (name, value, step, split) row");
        goto done;
    }
    PyObject *r_name = PyTuple_GET_ITEM(row, 0), *r_value = PyTuple_GET_ITEM(row, 1);
    PyObject *r_step = PyTuple_GET_ITEM(row, 2), *r_split = PyTuple_GET_ITEM(row, 3);
    if (!PyUnicode_CheckExact(r_name) || !PyUnicode_CheckExact(r_split) ||
            !(r_value == Py_None || PyFloat_CheckExact(r_value)) || !(r_step == Py_None || PyLong_CheckExact(r_step))) {
        PyErr_SetString(PyExc_TypeError, "the point check returned a row of other types than (str, float, int, str)");
        goto done;
    }
    long long whole = 0;
    if (r_step != Py_None) {
        int overflow;
        whole = PyLong_AsLongLongAndOverflow(r_step, &overflow);
        if (overflow) {
            PyErr_SetString(PyExc_OverflowError, "the point check returned a step beyond 64 bits");
            goto done;
        }
    }
    Py_ssize_t name_id = text_id(self, r_name);
    Py_ssize_t split_id = name_id < -1 ? -2 : text_id(self, r_split);
    if (name_id < -1 || split_id < -1)
        goto done;
    if (name_id >= 0 && split_id >= 0) {
        if (PyDict_GET_SIZE(self->pairs) < MAX_PAIRS) {
            PyObject *key = PyTuple_Pack(2, r_name, r_split);
            PyObject *ids = PyLong_FromLongLong(((long long)name_id << 32) | (long long)split_id);
            int stored = key != NULL && ids != NULL ? PyDict_SetItem(self->pairs, key, ids) : -1;
            Py_XDECREF(key);
            Py_XDECREF(ids);
            if (stored < 0)
                goto done;
        }
        remember(seen_slot(self, r_name, r_split), r_name, r_split, name_id, split_id);
    }
    /* a string beyond the table: written in full, as a text of this row alone */
    if (name_id < 0 && (loose[0].literal = literal_of(r_name)) == NULL)
        goto done;
    if (split_id < 0 && (loose[1].literal = literal_of(r_split)) == NULL)
        goto done;
    result = put_row(self, name_id < 0 ? &loose[0] : &self->texts[name_id], r_value == Py_None ? NULL : r_value,
                     r_step != Py_None, whole, split_id < 0 ? &loose[1] : &self->texts[split_id]);
done:
    Py_XDECREF(loose[0].literal);
    Py_XDECREF(loose[1].literal);
    Py_DECREF(row);
    return result;
}

/* ``points(name, value, step=None, split="train")`` */
static PyObject *
points_call(PyObject *callable, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Points *self = (Points *)callable;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *given[4] = {NULL, NULL, Py_None, default_split};
    int set[4] = {0, 0, 0, 0};

    if (nargs > 4) {
        PyErr_Format(PyExc_TypeError, "log_metric() takes from 2 to 4 positional arguments but %zd were given", nargs);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        given[i] = args[i];
        set[i] = 1;
    }
    if (kwnames != NULL) {
        for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(kwnames); k++) {
            PyObject *key = PyTuple_GET_ITEM(kwnames, k);
            int at = key == kw_step ? 2 : key == kw_split ? 3 : key == kw_name ? 0 : key == kw_value ? 1 : -1;
            if (at < 0) {  /* not the interned name: compare the text */
                PyObject *names[4] = {kw_name, kw_value, kw_step, kw_split};
                for (int j = 0; j < 4 && at < 0; j++) {
                    int equal = PyObject_RichCompareBool(key, names[j], Py_EQ);
                    if (equal < 0)
                        return NULL;
                    if (equal)
                        at = j;
                }
            }
            if (at < 0) {
                PyErr_Format(PyExc_TypeError, "log_metric() got an unexpected keyword argument '%S'", key);
                return NULL;
            }
            if (set[at]) {
                PyErr_Format(PyExc_TypeError, "log_metric() got multiple values for argument '%S'", key);
                return NULL;
            }
            given[at] = args[nargs + k];
            set[at] = 1;
        }
    }
    if (!set[0] || !set[1]) {
        PyErr_SetString(PyExc_TypeError, set[0] ? "log_metric() missing 1 required positional argument: 'value'"
                        : set[1] ? "log_metric() missing 1 required positional argument: 'name'"
                        : "log_metric() missing 2 required positional arguments: 'name' and 'value'");
        return NULL;
    }
    if (self->dropped) {
        if (self->dropped == 1) {  /* said once: a process the version forked has no pipe to the runner */
            self->dropped = 2;
            PySys_WriteStderr("%s (pid %ld)\n", FORKED_NOTE, (long)getpid());
        }
        Py_RETURN_NONE;
    }

    PyObject *name = given[0], *value = given[1], *step = given[2], *split = given[3];
    int taken = 1;  /* 1: still to record */
    if (PyFloat_CheckExact(value) && (step == Py_None || PyLong_CheckExact(step))) {
        long long whole = 0;
        int in_range = 1;
        if (step != Py_None) {
            int overflow;
            whole = PyLong_AsLongLongAndOverflow(step, &overflow);  /* an exact int: never an error */
            in_range = !overflow && whole >= self->low && whole <= self->high;
        }
        if (in_range) {
            Seen *slot = seen_slot(self, name, split);
            Py_ssize_t name_id = -1, split_id = -1;
            if (slot->name == name && slot->split == split) {
                name_id = slot->name_id;
                split_id = slot->split_id;
            }
            else if (PyUnicode_CheckExact(name) && PyUnicode_CheckExact(split)) {
                /* equal strings, other objects: a pair checked before is good again */
                PyObject *key = PyTuple_Pack(2, name, split);
                if (key == NULL)
                    return NULL;
                PyObject *ids = PyDict_GetItemWithError(self->pairs, key);  /* borrowed */
                Py_DECREF(key);
                if (ids == NULL && PyErr_Occurred())
                    return NULL;
                if (ids != NULL) {
                    long long both = PyLong_AsLongLong(ids);
                    name_id = (Py_ssize_t)(both >> 32);
                    split_id = (Py_ssize_t)(both & 0xffffffffLL);
                    remember(slot, name, split, name_id, split_id);
                }
            }
            if (name_id >= 0) {
                if (put_row(self, &self->texts[name_id], value, step != Py_None, whole, &self->texts[split_id]) < 0)
                    return NULL;
                taken = 0;
            }
        }
    }
    if (taken && take_slow(self, name, value, step, split) < 0)
        return NULL;
    if (self->len >= self->wake_bytes && !self->woken && self->wake != NULL) {
        self->woken = 1;
        PyObject *result = PyObject_CallNoArgs(self->wake);
        if (result == NULL)
            return NULL;
        Py_DECREF(result);
    }
    if (self->rows >= self->most && self->catch_up != NULL) {
        PyObject *result = PyObject_CallNoArgs(self->catch_up);
        if (result == NULL)
            return NULL;
        Py_DECREF(result);
    }
    Py_RETURN_NONE;
}

/* --- sending ---------------------------------------------------------------------------------------- */

static const char BASE64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void
base64_encode(const unsigned char *in, Py_ssize_t size, unsigned char *out)
{
    Py_ssize_t i = 0;
    for (; i + 3 <= size; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *out++ = BASE64[v >> 18];
        *out++ = BASE64[(v >> 12) & 63];
        *out++ = BASE64[(v >> 6) & 63];
        *out++ = BASE64[v & 63];
    }
    if (i < size) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < size ? (uint32_t)in[i + 1] << 8 : 0);
        *out++ = BASE64[v >> 18];
        *out++ = BASE64[(v >> 12) & 63];
        *out++ = i + 1 < size ? BASE64[(v >> 6) & 63] : '=';
        *out++ = '=';
    }
}

/* The batch, detached: new points go to the spare buffer, or a new one. Its marshal header written. */
typedef struct {
    char *data;
    Py_ssize_t size, cap, rows;
} Batch;

static int
detach(Points *self, Batch *batch)
{
    if (self->rows > INT32_MAX || self->len > (PY_SSIZE_T_MAX / 4 - 3) * 3 - 64) {
        PyErr_SetString(PyExc_OverflowError, "too many points waiting to send at once");
        return -1;
    }
    batch->data = self->buf;
    batch->size = self->len;
    batch->cap = self->cap;
    batch->rows = self->rows;
    batch->data[0] = M_LIST;
    put_int32(batch->data + 1, (int32_t)self->rows);
    self->buf = NULL;
    self->len = self->cap = self->rows = 0;
    self->batch++;
    self->refs = 0;
    self->woken = 0;
    return 0;
}

/* A sent batch's buffer: the spare for the next one (warm memory), else freed. */
static void
release(Points *self, Batch *batch)
{
    if (self->spare == NULL && batch->cap <= KEEP_BYTES && !self->dropped) {
        self->spare = batch->data;
        self->spare_cap = batch->cap;
    }
    else
        PyMem_RawFree(batch->data);
}

static inline Py_ssize_t
base64_size(Py_ssize_t size)
{
    return (size + 2) / 3 * 4;
}

static PyObject *
points_take(Points *self, PyObject *Py_UNUSED(ignored))
{
    Batch batch;
    if (self->rows == 0)
        Py_RETURN_NONE;
    PyObject *text = PyUnicode_New(base64_size(self->len), 127);
    if (text == NULL)
        return NULL;
    if (detach(self, &batch) < 0) {
        Py_DECREF(text);
        return NULL;
    }
    unsigned char *out = PyUnicode_1BYTE_DATA(text);
    Py_BEGIN_ALLOW_THREADS
    base64_encode((const unsigned char *)batch.data, batch.size, out);
    Py_END_ALLOW_THREADS
    release(self, &batch);
    return text;
}

/* ``send(fd, prefix, suffix)``: the waiting points, packed as take() packs them, written to `fd` between
 * `prefix` and `suffix` -- encoded and written with the GIL released, from a buffer kept for the next
 * time (no Python object as large as the batch is made). The number of points sent. */
static PyObject *
points_send(Points *self, PyObject *args)
{
    int fd;
    Py_buffer prefix, suffix;
    Batch batch;
    PyObject *sent = NULL;
    if (!PyArg_ParseTuple(args, "iy*y*:send", &fd, &prefix, &suffix))
        return NULL;
    if (self->rows == 0) {
        sent = PyLong_FromLong(0);
        goto done;
    }
    Py_ssize_t total = prefix.len + base64_size(self->len) + suffix.len;
    char *out = self->out;  /* detached too: a second sender at the same time makes its own */
    Py_ssize_t out_cap = self->out_cap;
    self->out = NULL;
    self->out_cap = 0;
    if (out_cap < total) {
        PyMem_RawFree(out);
        out_cap = total;
        out = PyMem_RawMalloc(out_cap);
        if (out == NULL) {
            PyErr_NoMemory();
            goto done;
        }
    }
    if (detach(self, &batch) < 0) {
        PyMem_RawFree(out);
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    memcpy(out, prefix.buf, prefix.len);
    base64_encode((const unsigned char *)batch.data, batch.size, (unsigned char *)out + prefix.len);
    memcpy(out + total - suffix.len, suffix.buf, suffix.len);
    Py_END_ALLOW_THREADS
    release(self, &batch);
    Py_ssize_t written = 0;
    int failed = 0;
    while (written < total && !failed) {
        Py_ssize_t n;
        int error = 0;
        Py_BEGIN_ALLOW_THREADS
        n = write(fd, out + written, (size_t)(total - written));
        if (n < 0)
            error = errno;
        Py_END_ALLOW_THREADS
        if (n >= 0)
            written += n;
        else if (error == EINTR)
            failed = PyErr_CheckSignals() < 0;  /* a signal handler that raises stops the write */
        else {
            errno = error;
            PyErr_SetFromErrno(PyExc_OSError);
            failed = 1;
        }
    }
    if (self->out == NULL && out_cap <= KEEP_BYTES * 2) {
        self->out = out;
        self->out_cap = out_cap;
    }
    else
        PyMem_RawFree(out);
    if (!failed)
        sent = PyLong_FromSsize_t(batch.rows);
done:
    PyBuffer_Release(&prefix);
    PyBuffer_Release(&suffix);
    return sent;
}

static PyObject *
points_drop(Points *self, PyObject *Py_UNUSED(ignored))
{
    self->dropped = 1;
    PyMem_RawFree(self->buf);
    PyMem_RawFree(self->spare);
    PyMem_RawFree(self->out);
    self->buf = self->spare = self->out = NULL;
    self->len = self->cap = self->rows = 0;
    self->batch++;
    self->refs = 0;
    Py_RETURN_NONE;
}

static Py_ssize_t
points_length(Points *self)
{
    return self->rows;
}

/* --- the type --------------------------------------------------------------------------------------- */

static PyObject *
points_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"check", "catch_up", "most", "low", "high", "wake", "wake_bytes", NULL};
    PyObject *check, *catch_up, *wake = Py_None;
    Py_ssize_t most, wake_bytes = 1 << 20;
    long long low, high;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOnLL|On:Points", keywords, &check, &catch_up, &most, &low, &high,
                                     &wake, &wake_bytes))
        return NULL;
    if (!PyCallable_Check(check) || !PyCallable_Check(catch_up) || !(wake == Py_None || PyCallable_Check(wake))) {
        PyErr_SetString(PyExc_TypeError, "Points: check, catch_up and wake must be callable");
        return NULL;
    }
    Points *self = (Points *)type->tp_alloc(type, 0);  /* zeroed */
    if (self == NULL)
        return NULL;
    self->vectorcall = points_call;
    self->ids = PyDict_New();
    self->pairs = PyDict_New();
    if (self->ids == NULL || self->pairs == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    Py_INCREF(check);
    self->check = check;
    Py_INCREF(catch_up);
    self->catch_up = catch_up;
    self->most = most < 1 ? 1 : most;
    if (wake != Py_None) {
        Py_INCREF(wake);
        self->wake = wake;
    }
    self->wake_bytes = wake_bytes;
    self->low = low;
    self->high = high;
    return (PyObject *)self;
}

static int
points_traverse(Points *self, visitproc visit, void *arg)
{
    Py_VISIT(self->check);
    Py_VISIT(self->catch_up);  /* the reporter's bound method: the reporter holds this object */
    Py_VISIT(self->wake);
    return 0;
}

static int
points_clear(Points *self)
{
    Py_CLEAR(self->check);
    Py_CLEAR(self->catch_up);
    Py_CLEAR(self->wake);
    return 0;
}

static void
points_dealloc(Points *self)
{
    PyObject_GC_UnTrack(self);
    points_clear(self);
    Py_CLEAR(self->ids);
    Py_CLEAR(self->pairs);
    for (Py_ssize_t i = 0; i < self->ntexts; i++)
        Py_DECREF(self->texts[i].literal);
    PyMem_Free(self->texts);
    for (int i = 0; i < CACHE_SIZE; i++) {
        Py_CLEAR(self->seen[i].name);
        Py_CLEAR(self->seen[i].split);
    }
    PyMem_RawFree(self->buf);
    PyMem_RawFree(self->spare);
    PyMem_RawFree(self->out);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef points_methods[] = {
    {"take", (PyCFunction)points_take, METH_NOARGS,
     "take() -> the waiting points as pack_rows packs them (str), or None when none wait"},
    {"send", (PyCFunction)points_send, METH_VARARGS,
     "send(fd, prefix, suffix) -> write the waiting points, packed as take() packs them, between prefix and "
     "suffix to fd; how many were sent"},
    {"drop", (PyCFunction)points_drop, METH_NOARGS,
     "drop() -> forget the waiting points and ignore every later one (a forked child)"},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods points_as_sequence = {
    .sq_length = (lenfunc)points_length,
};

static PyTypeObject PointsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "mlpipeline.script._points.Points",
    .tp_doc = "Points(check, catch_up, most, low, high, wake=None, wake_bytes=1 MiB): log_metric's point taker "
              "in a version's child",
    .tp_basicsize = sizeof(Points),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_new = points_new,
    .tp_dealloc = (destructor)points_dealloc,
    .tp_traverse = (traverseproc)points_traverse,
    .tp_clear = (inquiry)points_clear,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(Points, vectorcall),
    .tp_methods = points_methods,
    .tp_as_sequence = &points_as_sequence,
};

static struct PyModuleDef points_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "mlpipeline.script._points",
    .m_doc = "log_metric's point taker in C (mlpipeline/script/report.py holds the pure-Python one)",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__points(void)
{
    if (PyType_Ready(&PointsType) < 0)
        return NULL;
    default_split = PyUnicode_InternFromString("train");
    kw_name = PyUnicode_InternFromString("name");
    kw_value = PyUnicode_InternFromString("value");
    kw_step = PyUnicode_InternFromString("step");
    kw_split = PyUnicode_InternFromString("split");
    if (!default_split || !kw_name || !kw_value || !kw_step || !kw_split)
        return NULL;
    PyObject *module = PyModule_Create(&points_module);
    if (module == NULL)
        return NULL;
    Py_INCREF(&PointsType);
    if (PyModule_AddObject(module, "Points", (PyObject *)&PointsType) < 0) {
        Py_DECREF(&PointsType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
