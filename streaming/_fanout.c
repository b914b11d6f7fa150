/* The forwarder's per-packet fan-out in C: rewrite, SRTP-protect and send one RTP packet for every
 * viewer of a published track, in one call from Python.
 *
 * streaming/forwarder.py decides everything about a viewer (payload type, sequence and timestamp
 * offsets, its first keyframe, its extension layout) on the Python path; once a viewer's slot is
 * steady, `PublishedTrack` hands it to a `Fanout` as a target, and from then on each incoming
 * packet costs that viewer a 12-byte header write, a copy, libsrtp's `srtp_protect` and a
 * `sendto` on its ICE socket, with no Python objects made.
 *
 * Safety: before using a target, every packet checks the same three identities the Python path
 * checks (the sender's DTLS transport is the one the target was built from, that transport is still
 * CONNECTED, and its ICE connection's nominated pair is still the one whose socket and address the
 * target holds). aioice forgets the nominated pair before it closes its sockets and aiortc's DTLS
 * transport leaves CONNECTED before it is torn down, so a target is never used with a closed
 * socket or a freed SRTP context; it holds a reference to the pylibsrtp Session that owns that
 * context. A target that fails a check is dropped and handed back to Python, which takes the
 * viewer back onto its own path (and promotes it again when it is steady).
 *
 * `srtp_protect` is libsrtp 2's, reached through pylibsrtp's cffi binding: Python passes its
 * address (streaming/aiortc_hooks.py checks its signature first).
 *
 * Names: this file spells no attribute of aiortc's. The private attributes it reads and writes
 * (the sender's transport, the transport's state, the sender's Sender Report figures) are passed
 * to the constructor by streaming/aiortc_hooks.py (`SENDER_ATTRIBUTES`), which checks each of
 * them, by behaviour, at start-up.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#define MAX_PACKET 1500  /* what pylibsrtp's own buffer holds, trailer included */
#define STRIDE 2048      /* bytes of scratch per target: a packet and SRTP's trailer */

typedef int (*protect_fn)(void *context, void *packet, int *length);

typedef struct {
    PyObject *slot;      /* the ViewerSlot: how Python names this target */
    PyObject *sender;    /* its RTCRtpSender */
    PyObject *dtls;      /* the sender's RTCDtlsTransport when the target was made */
    PyObject *nominated; /* that transport's ICE connection's dict of nominated pairs */
    PyObject *pair;      /* the nominated pair whose socket and address are below */
    PyObject *session;   /* the pylibsrtp.Session owning `context` (kept alive) */
    void *context;       /* srtp_t */
    int fd;
    struct sockaddr_storage address;
    socklen_t address_length;
    uint32_t ssrc;
    uint32_t ts_offset;
    uint16_t seq_offset;
    uint16_t picture_id_offset; /* VP8 picture id and TL0PICIDX offsets (0, 0: as received) */
    uint8_t tl0_offset;
    uint8_t payload_type;
    Py_ssize_t layout;   /* index into the templates passed to send() */
    uint16_t last_seq;
    uint32_t last_ts;
    unsigned long long packets;
    unsigned long long octets;
    int length;          /* this round: protected length, or 0 for nothing to send */
    int dropped;
} Target;

typedef struct {
    PyObject_HEAD
    protect_fn protect;
    PyObject *connected; /* aiortc's State.CONNECTED */
    /* Attribute names, from Python: the sender's DTLS transport, that transport's state, and the
     * sender's Sender Report figures (NTP time, RTP timestamp, packets, octets). */
    PyObject *name_transport, *name_state, *name_ntp, *name_rtp, *name_packets, *name_octets;
    Target *targets;
    Py_ssize_t count;
    Py_ssize_t capacity;
    unsigned char *scratch;
    int busy;            /* inside send(): the target array must not move */
} Fanout;

static PyObject *one;

static void target_release(Target *t) {
    Py_CLEAR(t->slot);
    Py_CLEAR(t->sender);
    Py_CLEAR(t->dtls);
    Py_CLEAR(t->nominated);
    Py_CLEAR(t->pair);
    Py_CLEAR(t->session);
}

static PyObject *target_counters(Target *t) {
    return Py_BuildValue("(KKkk)", t->packets, t->octets, (unsigned long)t->last_seq,
                         (unsigned long)t->last_ts);
}

static Py_ssize_t find(Fanout *self, PyObject *slot) {
    for (Py_ssize_t i = 0; i < self->count; i++) {
        if (self->targets[i].slot == slot) return i;
    }
    return -1;
}

static int refuse_if_busy(Fanout *self) {
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "Fanout changed while sending");
        return -1;
    }
    return 0;
}

/* Remove target i (its references released), keeping the others in order. */
static void remove_at(Fanout *self, Py_ssize_t i) {
    target_release(&self->targets[i]);
    memmove(&self->targets[i], &self->targets[i + 1],
            (size_t)(self->count - i - 1) * sizeof(Target));
    self->count--;
}

/* Append (slot, counters) of target i to `list`, then remove the target. */
static int hand_back(Fanout *self, Py_ssize_t i, PyObject *list) {
    Target *t = &self->targets[i];
    PyObject *item = Py_BuildValue("(ON)", t->slot, target_counters(t));
    if (item == NULL) return -1;
    int failed = PyList_Append(list, item);
    Py_DECREF(item);
    if (failed) return -1;
    remove_at(self, i);
    return 0;
}

static int parse_address(const char *host, int port, Target *t) {
    memset(&t->address, 0, sizeof(t->address));
    struct sockaddr_in *v4 = (struct sockaddr_in *)&t->address;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&t->address;
    if (port <= 0 || port > 65535) return 0;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        t->address_length = sizeof(*v4);
        return 1;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        t->address_length = sizeof(*v6);
        return 1;
    }
    return 0; /* a name, or an IPv6 address with a zone: the Python path sends those */
}

static PyObject *Fanout_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"protect_address", "connected", "names", NULL};
    unsigned long long address;
    PyObject *connected;
    PyObject *names[6];
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "KO(UUUUUU)", keywords, &address, &connected,
                                     &names[0], &names[1], &names[2], &names[3], &names[4],
                                     &names[5])) {
        return NULL;
    }
    if (address == 0) {
        PyErr_SetString(PyExc_ValueError, "srtp_protect's address is needed");
        return NULL;
    }
    Fanout *self = (Fanout *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    self->protect = (protect_fn)(uintptr_t)address;
    Py_INCREF(connected);
    self->connected = connected;
    self->name_transport = Py_NewRef(names[0]);
    self->name_state = Py_NewRef(names[1]);
    self->name_ntp = Py_NewRef(names[2]);
    self->name_rtp = Py_NewRef(names[3]);
    self->name_packets = Py_NewRef(names[4]);
    self->name_octets = Py_NewRef(names[5]);
    return (PyObject *)self;
}

static int Fanout_traverse(Fanout *self, visitproc visit, void *arg) {
    Py_VISIT(self->connected);
    for (Py_ssize_t i = 0; i < self->count; i++) {
        Target *t = &self->targets[i];
        Py_VISIT(t->slot);
        Py_VISIT(t->sender);
        Py_VISIT(t->dtls);
        Py_VISIT(t->nominated);
        Py_VISIT(t->pair);
        Py_VISIT(t->session);
    }
    return 0;
}

static int Fanout_clear_refs(Fanout *self) {
    for (Py_ssize_t i = 0; i < self->count; i++) target_release(&self->targets[i]);
    self->count = 0;
    Py_CLEAR(self->connected);
    Py_CLEAR(self->name_transport);
    Py_CLEAR(self->name_state);
    Py_CLEAR(self->name_ntp);
    Py_CLEAR(self->name_rtp);
    Py_CLEAR(self->name_packets);
    Py_CLEAR(self->name_octets);
    return 0;
}

static void Fanout_dealloc(Fanout *self) {
    PyObject_GC_UnTrack(self);
    Fanout_clear_refs(self);
    PyMem_Free(self->targets);
    PyMem_Free(self->scratch);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static Py_ssize_t Fanout_len(Fanout *self) { return self->count; }

static int reserve(Fanout *self, Py_ssize_t wanted) {
    if (wanted <= self->capacity) return 0;
    Py_ssize_t capacity = self->capacity ? self->capacity * 2 : 16;
    while (capacity < wanted) capacity *= 2;
    Target *targets = PyMem_Realloc(self->targets, (size_t)capacity * sizeof(Target));
    if (targets == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->targets = targets;
    unsigned char *scratch = PyMem_Realloc(self->scratch, (size_t)capacity * STRIDE);
    if (scratch == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->scratch = scratch;
    self->capacity = capacity;
    return 0;
}

PyDoc_STRVAR(add_doc,
"add(slot, sender, dtls, nominated, pair, session, context, fd, host, port, ssrc, payload_type,\n"
"    seq_offset, ts_offset, picture_id_offset, tl0_offset, layout, packets, octets, last_seq,\n"
"    last_ts) -> bool\n\n"
"Start sending to `slot` (replacing any target it had). False if `host` is not a numeric address.");

static PyObject *Fanout_add(Fanout *self, PyObject *args) {
    PyObject *slot, *sender, *dtls, *nominated, *pair, *session;
    unsigned long long context, packets, octets;
    int fd, port, payload_type, picture_id_offset, tl0_offset;
    const char *host;
    unsigned long ssrc, seq_offset, ts_offset, last_seq, last_ts;
    Py_ssize_t layout;
    if (!PyArg_ParseTuple(args, "OOOO!OOKisikikkiinKKkk:add", &slot, &sender, &dtls,
                          &PyDict_Type, &nominated, &pair, &session, &context, &fd, &host, &port,
                          &ssrc, &payload_type, &seq_offset, &ts_offset, &picture_id_offset,
                          &tl0_offset, &layout, &packets, &octets, &last_seq, &last_ts)) {
        return NULL;
    }
    if (refuse_if_busy(self) < 0) return NULL;
    if (context == 0 || fd < 0 || payload_type < 0 || payload_type > 127 || layout < 0) {
        PyErr_SetString(PyExc_ValueError, "a target needs an SRTP context, a socket, a payload "
                                          "type (0-127) and a layout index");
        return NULL;
    }
    Target target;
    memset(&target, 0, sizeof(target));
    if (!parse_address(host, port, &target)) Py_RETURN_FALSE;
    Py_ssize_t existing = find(self, slot);
    if (existing >= 0) remove_at(self, existing);
    if (reserve(self, self->count + 1) < 0) return NULL;
    target.context = (void *)(uintptr_t)context;
    target.fd = fd;
    target.ssrc = (uint32_t)ssrc;
    target.payload_type = (uint8_t)payload_type;
    target.seq_offset = (uint16_t)seq_offset;
    target.ts_offset = (uint32_t)ts_offset;
    target.picture_id_offset = (uint16_t)picture_id_offset;
    target.tl0_offset = (uint8_t)tl0_offset;
    target.layout = layout;
    target.packets = packets;
    target.octets = octets;
    target.last_seq = (uint16_t)last_seq;
    target.last_ts = (uint32_t)last_ts;
    target.slot = Py_NewRef(slot);
    target.sender = Py_NewRef(sender);
    target.dtls = Py_NewRef(dtls);
    target.nominated = Py_NewRef(nominated);
    target.pair = Py_NewRef(pair);
    target.session = Py_NewRef(session);
    self->targets[self->count++] = target;
    Py_RETURN_TRUE;
}

PyDoc_STRVAR(remove_doc,
"remove(slot) -> (packets, octets, last_seq, last_ts) | None\n\n"
"Stop sending to `slot`; its counters, or None if it was not a target.");

static PyObject *Fanout_remove(Fanout *self, PyObject *slot) {
    if (refuse_if_busy(self) < 0) return NULL;
    Py_ssize_t i = find(self, slot);
    if (i < 0) Py_RETURN_NONE;
    PyObject *counters = target_counters(&self->targets[i]);
    if (counters == NULL) return NULL;
    remove_at(self, i);
    return counters;
}

PyDoc_STRVAR(counters_doc,
"counters(slot) -> (packets, octets, last_seq, last_ts) | None");

static PyObject *Fanout_counters(Fanout *self, PyObject *slot) {
    Py_ssize_t i = find(self, slot);
    if (i < 0) Py_RETURN_NONE;
    return target_counters(&self->targets[i]);
}

PyDoc_STRVAR(clear_doc,
"clear() -> list[(slot, (packets, octets, last_seq, last_ts))]\n\n"
"Stop sending to every target; each slot with its counters.");

static PyObject *Fanout_clear(Fanout *self, PyObject *unused) {
    if (refuse_if_busy(self) < 0) return NULL;
    PyObject *result = PyList_New(0);
    if (result == NULL) return NULL;
    while (self->count > 0) {
        if (hand_back(self, self->count - 1, result) < 0) {
            Py_DECREF(result);
            return NULL;
        }
    }
    return result;
}

/* Whether `t` may still be used: the checks the Python path makes on every packet. */
static int target_valid(Fanout *self, Target *t) {
    PyObject *value = PyObject_GetAttr(t->sender, self->name_transport);
    if (value == NULL) {
        PyErr_Clear();
        return 0;
    }
    int same = value == t->dtls;
    Py_DECREF(value);
    if (!same) return 0;
    value = PyObject_GetAttr(t->dtls, self->name_state);
    if (value == NULL) {
        PyErr_Clear();
        return 0;
    }
    same = value == self->connected;
    Py_DECREF(value);
    if (!same) return 0;
    value = PyDict_GetItemWithError(t->nominated, one); /* borrowed */
    if (value == NULL) PyErr_Clear();
    return value == t->pair;
}

/* Keep the sender's Sender Report figures truthful (on the first packet and every 32nd). */
static void note_sent(Fanout *self, Target *t, PyObject *ntp_time) {
    PyObject *rtp = PyLong_FromUnsignedLong(t->last_ts);
    PyObject *packets = PyLong_FromUnsignedLongLong(t->packets);
    PyObject *octets = PyLong_FromUnsignedLongLong(t->octets);
    if (rtp && packets && octets) {
        if (PyObject_SetAttr(t->sender, self->name_ntp, ntp_time) < 0 ||
            PyObject_SetAttr(t->sender, self->name_rtp, rtp) < 0 ||
            PyObject_SetAttr(t->sender, self->name_packets, packets) < 0 ||
            PyObject_SetAttr(t->sender, self->name_octets, octets) < 0) {
            PyErr_Clear();
        }
    } else {
        PyErr_Clear();
    }
    Py_XDECREF(rtp);
    Py_XDECREF(packets);
    Py_XDECREF(octets);
}

typedef struct {
    uint8_t first;   /* the header's first byte (version, extension bit) */
    uint8_t marker;  /* the marker bit, ORed with each target's payload type */
    const char *rest;
    Py_ssize_t rest_length;
} Template;

#define MAX_TEMPLATES 16

PyDoc_STRVAR(send_doc,
"send(sequence_number, timestamp, ntp_time, size, templates, picture_id_length, picture_id,\n"
"     tl0_position, tl0) -> list | None\n\n"
"Rewrite, protect and send one packet to every target. `templates[i]` is (first byte, marker\n"
"bit, everything after the SSRC) for the targets with layout i; `size` is the payload's length\n"
"(for the octet counters). A VP8 payload's picture id (1 or 2 bytes from its third byte; length\n"
"0: none) and TL0PICIDX (at `tl0_position`, -1: none) are rewritten by each target's offsets.\n"
"Returns None, or [(slot, counters)] for targets dropped because their transport changed or\n"
"closed.");

static PyObject *Fanout_send(Fanout *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 9) {
        PyErr_SetString(PyExc_TypeError, "send() takes 9 arguments");
        return NULL;
    }
    unsigned long sequence_number = PyLong_AsUnsignedLong(args[0]);
    unsigned long timestamp = PyLong_AsUnsignedLong(args[1]);
    PyObject *ntp_time = args[2];
    unsigned long long size = PyLong_AsUnsignedLongLong(args[3]);
    long picture_id_length = PyLong_AsLong(args[5]);
    long picture_id = PyLong_AsLong(args[6]);
    long tl0_position = PyLong_AsLong(args[7]);
    long tl0 = PyLong_AsLong(args[8]);
    if (PyErr_Occurred()) return NULL;
    if (picture_id_length < 0 || picture_id_length > 2 || tl0_position >= (long)size ||
        (picture_id_length > 0 && (unsigned long long)(2 + picture_id_length) > size)) {
        PyErr_SetString(PyExc_ValueError, "the VP8 picture id or TL0PICIDX is outside the payload");
        return NULL;
    }
    PyObject *sequence = PySequence_Fast(args[4], "templates must be a sequence");
    if (sequence == NULL) return NULL;
    Py_ssize_t layouts = PySequence_Fast_GET_SIZE(sequence);
    if (layouts > MAX_TEMPLATES) {
        Py_DECREF(sequence);
        PyErr_SetString(PyExc_ValueError, "too many templates");
        return NULL;
    }
    Template templates[MAX_TEMPLATES];
    for (Py_ssize_t i = 0; i < layouts; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(sequence, i);
        int first, marker;
        Py_buffer rest;
        if (!PyTuple_Check(item) || !PyArg_ParseTuple(item, "iiy*", &first, &marker, &rest)) {
            Py_DECREF(sequence);
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "a template is a tuple");
            return NULL;
        }
        /* `rest` is a bytes object that `sequence` keeps alive for this call. */
        templates[i].first = (uint8_t)first;
        templates[i].marker = (uint8_t)marker;
        templates[i].rest = rest.buf;
        templates[i].rest_length = rest.len;
        PyBuffer_Release(&rest);
    }

    self->busy = 1;
    Py_ssize_t dropped = 0;
    for (Py_ssize_t i = 0; i < self->count; i++) {
        Target *t = &self->targets[i];
        t->length = 0;
        if (!target_valid(self, t)) {
            t->dropped = 1;
            dropped++;
            continue;
        }
        if (t->layout >= layouts) continue;
        const Template *template = &templates[t->layout];
        Py_ssize_t length = 12 + template->rest_length;
        if (length > MAX_PACKET - 144) continue; /* SRTP's trailer must fit too: dropped */
        unsigned char *out = self->scratch + i * STRIDE;
        uint16_t seq = (uint16_t)(sequence_number + t->seq_offset);
        uint32_t ts = (uint32_t)(timestamp + t->ts_offset);
        out[0] = template->first;
        out[1] = template->marker | t->payload_type;
        out[2] = (uint8_t)(seq >> 8);
        out[3] = (uint8_t)seq;
        out[4] = (uint8_t)(ts >> 24);
        out[5] = (uint8_t)(ts >> 16);
        out[6] = (uint8_t)(ts >> 8);
        out[7] = (uint8_t)ts;
        out[8] = (uint8_t)(t->ssrc >> 24);
        out[9] = (uint8_t)(t->ssrc >> 16);
        out[10] = (uint8_t)(t->ssrc >> 8);
        out[11] = (uint8_t)t->ssrc;
        memcpy(out + 12, template->rest, (size_t)template->rest_length);
        if (picture_id_length > 0 && (t->picture_id_offset || t->tl0_offset) &&
            (unsigned long long)template->rest_length >= size) {
            unsigned char *payload = out + 12 + template->rest_length - size;
            if (picture_id_length == 2) {
                uint16_t id = (uint16_t)((picture_id + t->picture_id_offset) & 0x7FFF);
                payload[2] = (uint8_t)(0x80 | (id >> 8));
                payload[3] = (uint8_t)id;
            } else {
                payload[2] = (uint8_t)((picture_id + t->picture_id_offset) & 0x7F);
            }
            if (tl0_position >= 0) payload[tl0_position] = (uint8_t)(tl0 + t->tl0_offset);
        }
        int protected_length = (int)length;
        if (self->protect(t->context, out, &protected_length) != 0) continue;
        t->length = protected_length;
        t->packets++;
        t->octets += size;
        t->last_seq = seq;
        t->last_ts = ts;
        if ((t->packets & 31) == 1) note_sent(self, t, ntp_time);
    }
    /* Protect for everyone first, then send in one loop: the syscalls run back to back. A socket
     * that would block, or a viewer gone, loses the packet, as a network would. */
    for (Py_ssize_t i = 0; i < self->count; i++) {
        Target *t = &self->targets[i];
        if (t->length > 0) {
            (void)sendto(t->fd, self->scratch + i * STRIDE, (size_t)t->length, MSG_DONTWAIT,
                         (struct sockaddr *)&t->address, t->address_length);
        }
    }
    self->busy = 0;
    Py_DECREF(sequence);
    if (dropped == 0) Py_RETURN_NONE;

    PyObject *result = PyList_New(0);
    if (result == NULL) return NULL;
    for (Py_ssize_t i = self->count - 1; i >= 0; i--) {
        if (self->targets[i].dropped && hand_back(self, i, result) < 0) {
            Py_DECREF(result);
            return NULL;
        }
    }
    return result;
}

static PyMethodDef Fanout_methods[] = {
    {"add", (PyCFunction)Fanout_add, METH_VARARGS, add_doc},
    {"remove", (PyCFunction)Fanout_remove, METH_O, remove_doc},
    {"counters", (PyCFunction)Fanout_counters, METH_O, counters_doc},
    {"clear", (PyCFunction)Fanout_clear, METH_NOARGS, clear_doc},
    {"send", (PyCFunction)(void (*)(void))Fanout_send, METH_FASTCALL, send_doc},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods Fanout_as_sequence = {
    .sq_length = (lenfunc)Fanout_len,
};

PyDoc_STRVAR(Fanout_doc,
"Fanout(protect_address, connected, names): the viewers of one published track that are sent to\n"
"from C. `names` is (sender's transport, transport's state, Sender Report NTP time, RTP timestamp,\n"
"packet count, octet count): the attribute names C reads and writes.");

static PyTypeObject FanoutType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "streaming._fanout.Fanout",
    .tp_basicsize = sizeof(Fanout),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = Fanout_doc,
    .tp_new = Fanout_new,
    .tp_dealloc = (destructor)Fanout_dealloc,
    .tp_traverse = (traverseproc)Fanout_traverse,
    .tp_clear = (inquiry)Fanout_clear_refs,
    .tp_methods = Fanout_methods,
    .tp_as_sequence = &Fanout_as_sequence,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "streaming._fanout",
    .m_doc = "The forwarder's per-packet fan-out in C (see streaming/forwarder.py).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__fanout(void) {
    one = PyLong_FromLong(1);
    if (!one) return NULL;
    if (PyType_Ready(&FanoutType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&FanoutType);
    if (PyModule_AddObject(m, "Fanout", (PyObject *)&FanoutType) < 0) {
        Py_DECREF(&FanoutType);
        Py_DECREF(m);
        return NULL;
    }
    PyModule_AddIntConstant(m, "MAX_PACKET", MAX_PACKET);
    return m;
}
