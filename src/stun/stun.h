/* STUN (RFC 8489) and TURN (RFC 8656) message codec: parse, build, integrity, fingerprint.
 * A library on its own: it depends on OpenSSL (HMAC, digests) and zlib (CRC-32) only, never logs,
 * never allocates, and never reads outside the buffers it is given. */
#ifndef ML_STUN_H
#define ML_STUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define STUN_HEADER_LEN 20
#define STUN_MAGIC_COOKIE 0x2112A442u
#define STUN_TID_LEN 12
#define STUN_MAX_ATTRS 48 /* attributes indexed per message; more is a malformed message */
#define STUN_CHANNELDATA_HEADER_LEN 4
#define STUN_SHA1_LEN 20
#define STUN_SHA256_LEN 32
#define STUN_MD5_LEN 16
#define STUN_MAX_KEY_LEN 32 /* long-term keys: MD5 (16) or SHA-256 (32) */

enum stun_class {
    STUN_REQUEST = 0,
    STUN_INDICATION = 1,
    STUN_SUCCESS = 2,
    STUN_ERROR = 3,
};

enum stun_method {
    STUN_BINDING = 0x001,
    TURN_ALLOCATE = 0x003,
    TURN_REFRESH = 0x004,
    TURN_SEND = 0x006,
    TURN_DATA = 0x007,
    TURN_CREATE_PERMISSION = 0x008,
    TURN_CHANNEL_BIND = 0x009,
    TURN_CONNECT = 0x00a,            /* RFC 6062 */
    TURN_CONNECTION_BIND = 0x00b,    /* RFC 6062 */
    TURN_CONNECTION_ATTEMPT = 0x00c, /* RFC 6062 */
};

enum stun_attr_type {
    /* comprehension-required (0x0000-0x7FFF) */
    STUN_ATTR_MAPPED_ADDRESS = 0x0001,
    STUN_ATTR_CHANGE_REQUEST = 0x0003, /* RFC 5780; parsed, never honoured */
    STUN_ATTR_USERNAME = 0x0006,
    STUN_ATTR_MESSAGE_INTEGRITY = 0x0008,
    STUN_ATTR_ERROR_CODE = 0x0009,
    STUN_ATTR_UNKNOWN_ATTRIBUTES = 0x000A,
    STUN_ATTR_CHANNEL_NUMBER = 0x000C,
    STUN_ATTR_LIFETIME = 0x000D,
    STUN_ATTR_XOR_PEER_ADDRESS = 0x0012,
    STUN_ATTR_DATA = 0x0013,
    STUN_ATTR_REALM = 0x0014,
    STUN_ATTR_NONCE = 0x0015,
    STUN_ATTR_XOR_RELAYED_ADDRESS = 0x0016,
    STUN_ATTR_REQUESTED_ADDRESS_FAMILY = 0x0017,
    STUN_ATTR_EVEN_PORT = 0x0018,
    STUN_ATTR_REQUESTED_TRANSPORT = 0x0019,
    STUN_ATTR_DONT_FRAGMENT = 0x001A,
    STUN_ATTR_MESSAGE_INTEGRITY_SHA256 = 0x001C,
    STUN_ATTR_PASSWORD_ALGORITHM = 0x001D,
    STUN_ATTR_USERHASH = 0x001E,
    STUN_ATTR_XOR_MAPPED_ADDRESS = 0x0020,
    STUN_ATTR_RESERVATION_TOKEN = 0x0022,
    STUN_ATTR_PRIORITY = 0x0024,      /* RFC 8445 */
    STUN_ATTR_USE_CANDIDATE = 0x0025, /* RFC 8445 */
    STUN_ATTR_CONNECTION_ID = 0x002A, /* RFC 6062 */
    /* comprehension-optional (0x8000-0xFFFF) */
    STUN_ATTR_ADDITIONAL_ADDRESS_FAMILY = 0x8000,
    STUN_ATTR_ADDRESS_ERROR_CODE = 0x8001,
    STUN_ATTR_PASSWORD_ALGORITHMS = 0x8002,
    STUN_ATTR_ALTERNATE_DOMAIN = 0x8003,
    STUN_ATTR_ICMP = 0x8004,
    STUN_ATTR_SOFTWARE = 0x8022,
    STUN_ATTR_ALTERNATE_SERVER = 0x8023,
    STUN_ATTR_TRANSACTION_TRANSMIT_COUNTER = 0x8025,
    STUN_ATTR_CACHE_TIMEOUT = 0x8027,
    STUN_ATTR_FINGERPRINT = 0x8028,
    STUN_ATTR_ICE_CONTROLLED = 0x8029,
    STUN_ATTR_ICE_CONTROLLING = 0x802A,
    STUN_ATTR_RESPONSE_ORIGIN = 0x802B,
    STUN_ATTR_OTHER_ADDRESS = 0x802C,
};

/* PASSWORD-ALGORITHM values (RFC 8489 section 18.5). */
enum stun_password_alg {
    STUN_PWALG_MD5 = 0x0001,
    STUN_PWALG_SHA256 = 0x0002,
};

/* Address families in address attributes and REQUESTED-ADDRESS-FAMILY. */
#define STUN_FAMILY_IPV4 0x01
#define STUN_FAMILY_IPV6 0x02

/* Why stun_msg_parse() refused a message. */
enum stun_parse_err {
    STUN_PARSE_OK = 0,
    STUN_PARSE_TRUNCATED,       /* shorter than a header, or than the header's length says */
    STUN_PARSE_NOT_STUN,        /* the two top bits are not zero */
    STUN_PARSE_BAD_LENGTH,      /* length not a multiple of 4, or not the datagram length */
    STUN_PARSE_ATTR_OVERRUN,    /* an attribute runs past the end of the message */
    STUN_PARSE_TOO_MANY_ATTRS,  /* more than STUN_MAX_ATTRS attributes */
    STUN_PARSE_BAD_FINGERPRINT, /* FINGERPRINT present and wrong, or not the last attribute */
    STUN_PARSE_BAD_ATTR,        /* a known attribute with an impossible length */
};

/* One attribute: where its value is in the message. */
struct stun_attr {
    uint16_t type;
    uint16_t len;    /* value length in bytes, without padding */
    uint32_t offset; /* offset of the value from the start of the message */
};

/* A parsed message. It borrows the buffer given to stun_msg_parse(); nothing is copied. */
struct stun_msg {
    const uint8_t *buf; /* borrowed: the whole message, header included */
    size_t len;         /* bytes: header + attributes */
    uint16_t method;
    uint8_t cls;               /* enum stun_class */
    bool rfc3489;              /* no magic cookie: an RFC 3489 client */
    uint8_t tid[STUN_TID_LEN]; /* transaction id (bytes 8..19) */
    uint8_t tid16[16];         /* bytes 4..19: the RFC 3489 transaction id */
    unsigned nattrs;           /* attributes before the integrity cut-off (see below) */
    struct stun_attr attrs[STUN_MAX_ATTRS];
    int mi;    /* index in attrs of MESSAGE-INTEGRITY, or -1 */
    int mi256; /* index of MESSAGE-INTEGRITY-SHA256, or -1 */
    int fp;    /* index of FINGERPRINT, or -1 */
};
/* attrs[] holds every attribute up to MESSAGE-INTEGRITY(-SHA256) and FINGERPRINT; attributes
 * after an integrity attribute other than those two are ignored, as RFC 8489 14.5 says (after
 * MESSAGE-INTEGRITY-SHA256 only FINGERPRINT counts, 14.6). Ignored attributes are still
 * bounds-checked and do not count towards STUN_MAX_ATTRS. */

/* Parses a whole message of exactly len bytes (a datagram or one frame of a stream).
 * Checks the header, the length, every attribute's bounds, and FINGERPRINT when present.
 * Returns 0, or -1 with *err saying why (err may be NULL); after -1, m has no attributes but
 * keeps method, class and transaction id when the header could be read. m borrows buf. */
int stun_msg_parse(struct stun_msg *m, const uint8_t *buf, size_t len, enum stun_parse_err *err)
    __attribute__((warn_unused_result));

/* Human-readable name of a parse error, for logs and tests. Never NULL. */
const char *stun_parse_err_str(enum stun_parse_err err);

/* True when the first bytes look like a STUN message: at least a header, top two bits 00,
 * length a multiple of 4, cookie present. */
bool stun_is_stun(const uint8_t *buf, size_t len);

/* The first attribute of type t, or NULL. */
const struct stun_attr *stun_msg_find(const struct stun_msg *m, uint16_t t);
/* Pointer to the attribute's value (len bytes), borrowed from the message buffer. */
const uint8_t *stun_attr_value(const struct stun_msg *m, const struct stun_attr *a);

/* True for a comprehension-required type this codec does not know. */
bool stun_attr_is_unknown_required(uint16_t type);
/* Fills types[] with the message's unknown comprehension-required attributes; returns how many
 * (at most max). */
size_t stun_msg_unknown_required(const struct stun_msg *m, uint16_t *types, size_t max);

/* Typed readers: 0 on success, -1 when the attribute's value has the wrong size or content. */
int stun_attr_get_u32(const struct stun_msg *m, const struct stun_attr *a, uint32_t *out)
    __attribute__((warn_unused_result));
int stun_attr_get_u64(const struct stun_msg *m, const struct stun_attr *a, uint64_t *out)
    __attribute__((warn_unused_result));
/* MAPPED-ADDRESS style attribute into a sockaddr_in or sockaddr_in6 (len set in *salen). */
int stun_attr_get_addr(const struct stun_msg *m, const struct stun_attr *a,
                       struct sockaddr_storage *ss, socklen_t *salen)
    __attribute__((warn_unused_result));
/* XOR-*-ADDRESS attribute, un-XORed with the cookie and the transaction id (header bytes
 * 4..19, which for an RFC 3489 message are its 16-byte transaction id). */
int stun_attr_get_xaddr(const struct stun_msg *m, const struct stun_attr *a,
                        struct sockaddr_storage *ss, socklen_t *salen)
    __attribute__((warn_unused_result));
/* ERROR-CODE: *code is 300..699; *reason borrows the message (not NUL-terminated). reason and
 * reason_len may be NULL. */
int stun_attr_get_error(const struct stun_msg *m, const struct stun_attr *a, int *code,
                        const char **reason, size_t *reason_len)
    __attribute__((warn_unused_result));

/* Message builder. It writes into a caller-owned buffer and never past cap; an overflow is
 * remembered and reported by stun_build_finish(). Invalid arguments (an address family other
 * than AF_INET/AF_INET6, an error code outside 300..699, a reason over 763 bytes) and a body
 * longer than the 16-bit length field fail the message the same way. */
struct stun_builder {
    uint8_t *buf;
    size_t cap; /* bytes */
    size_t len; /* bytes written so far */
    bool overflow;
    bool rfc3489;
    uint8_t tid[STUN_TID_LEN];
};

/* Starts a message with the magic cookie and transaction id tid. */
void stun_build_init(struct stun_builder *b, uint8_t *buf, size_t cap, uint16_t method, uint8_t cls,
                     const uint8_t tid[STUN_TID_LEN]);
/* Starts a reply to m (same method and transaction id; an RFC 3489 reply when m was one, which
 * carries the 16-byte id and no cookie: answer such a client with MAPPED-ADDRESS). */
void stun_build_reply(struct stun_builder *b, uint8_t *buf, size_t cap, const struct stun_msg *m,
                      uint8_t cls);
/* Appends an attribute; the value is padded to 4 bytes with zeros. */
void stun_build_attr(struct stun_builder *b, uint16_t type, const void *val, size_t len);
void stun_build_u32(struct stun_builder *b, uint16_t type, uint32_t v);
void stun_build_u64(struct stun_builder *b, uint16_t type, uint64_t v);
/* An address attribute (MAPPED-ADDRESS style) from an AF_INET or AF_INET6 sockaddr. */
void stun_build_addr(struct stun_builder *b, uint16_t type, const struct sockaddr *sa);
/* An XOR-*-ADDRESS attribute; XORed with this builder's cookie and transaction id (header
 * bytes 4..19). */
void stun_build_xaddr(struct stun_builder *b, uint16_t type, const struct sockaddr *sa);
/* ERROR-CODE with code 300..699 and a reason phrase (NULL: the standard one). */
void stun_build_error(struct stun_builder *b, int code, const char *reason);
/* UNKNOWN-ATTRIBUTES listing n types (in an RFC 3489 reply an odd list repeats its last type,
 * as RFC 3489 wants; otherwise it is padded). */
void stun_build_unknown(struct stun_builder *b, const uint16_t *types, size_t n);
/* MESSAGE-INTEGRITY (HMAC-SHA1) and MESSAGE-INTEGRITY-SHA256 over what is built so far, with
 * the header length adjusted as RFC 8489 14.5/14.6 say. Keys are borrowed. */
void stun_build_integrity(struct stun_builder *b, const uint8_t *key, size_t keylen);
void stun_build_integrity_sha256(struct stun_builder *b, const uint8_t *key, size_t keylen);
/* FINGERPRINT: CRC-32 (zlib) of the message so far XOR 0x5354554e. Must come last. */
void stun_build_fingerprint(struct stun_builder *b);
/* Finalizes the length field. Returns the message length in bytes, or 0 on overflow. */
size_t stun_build_finish(struct stun_builder *b) __attribute__((warn_unused_result));

/* Integrity checks in constant time. Return 1 when valid, 0 when the MAC is wrong (or cannot be
 * computed), -1 when the message has no such attribute or it is malformed. A truncated
 * MESSAGE-INTEGRITY-SHA256 (16..28 bytes) is checked at its length. */
int stun_msg_check_integrity(const struct stun_msg *m, const uint8_t *key, size_t keylen);
int stun_msg_check_integrity_sha256(const struct stun_msg *m, const uint8_t *key, size_t keylen);

/* Long-term credential keys (RFC 8489 9.2.2): MD5("user:realm:password") into 16 bytes, or
 * SHA-256 of the same into 32 bytes. Inputs are used as given (ASCII credentials need no
 * OpaqueString preparation). Return 0, or -1 on a digest failure. */
int stun_key_md5(const char *user, size_t ulen, const char *realm, size_t rlen, const char *pass,
                 size_t plen, uint8_t out[STUN_MD5_LEN]) __attribute__((warn_unused_result));
int stun_key_sha256(const char *user, size_t ulen, const char *realm, size_t rlen, const char *pass,
                    size_t plen, uint8_t out[STUN_SHA256_LEN]) __attribute__((warn_unused_result));

/* Constant-time comparison of n bytes: 1 when equal. */
int stun_ct_equal(const void *a, const void *b, size_t n);

/* Standard reason phrase of an error code ("Bad Request", "Unauthorized", ...), never NULL. */
const char *stun_reason(int code);
/* Name of a method ("Binding", "Allocate", ...) or "unknown". */
const char *stun_method_name(uint16_t method);

/* Stream framing (RFC 8489 section 6.2.2 and RFC 8656 section 12.5): given the first avail
 * bytes of a stream, returns the length of the next frame (a STUN message, or a ChannelData
 * message padded to 4 bytes when pad_channeldata), 0 when more bytes are needed to tell,
 * or -1 when the bytes can be neither (the stream must be closed): top bits 10 or 11, or a STUN
 * length not a multiple of 4. The cookie is not required (RFC 3489 clients have none); the
 * frame still has to pass stun_msg_parse(). */
long stun_frame_len(const uint8_t *buf, size_t avail, bool pad_channeldata);

/* ChannelData (RFC 8656 section 12.4). */
static inline bool stun_is_channeldata(const uint8_t *buf, size_t len)
{
    return len >= STUN_CHANNELDATA_HEADER_LEN && (buf[0] & 0xC0) == 0x40;
}
/* Reads the channel number and the payload of a ChannelData message of len bytes; the payload
 * may be followed by padding. Returns 0, or -1 when buf is not ChannelData (shorter than its
 * header, top bits not 01) or the length field exceeds the message. *data borrows buf. */
int stun_channeldata_parse(const uint8_t *buf, size_t len, uint16_t *channel, const uint8_t **data,
                           size_t *dlen) __attribute__((warn_unused_result));
/* Writes a ChannelData header for dlen payload bytes (at most 65535) into hdr[4]. */
void stun_channeldata_header(uint8_t hdr[STUN_CHANNELDATA_HEADER_LEN], uint16_t channel,
                             size_t dlen);

/* Alignment-safe big-endian loads and stores. */
static inline uint16_t stun_get16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}
static inline uint32_t stun_get32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline void stun_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline void stun_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

#endif
