"""Random JSON values with CPython's `json` module as the oracle.

Writes two files: the input stream (each value put into a document through
an event, then read back with a query; integers of any size summed by
`increment`; documents under random string keys, read back a page at a
time) and the replies `json.dumps` says the projector must give, objects
sorted by key as `json.dumps(sort_keys=True)` sorts them. Values are spelled
as people and other encoders spell them: integers past 64 bits, `-0`,
exponents in either case, trailing zeros, random doubles (among them those
halfway between two shortest forms), escaped and raw text, lone surrogates,
U+D7FF, U+E000 to U+FFFF, U+10FFFF, nesting; object keys and document keys
mix the characters around the surrogates, which Python sorts by code point.

    python3 values.py SEED COUNT INPUT EXPECTED
"""

import json
import random
import struct
import sys

seed, count, input_path, expected_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
rng = random.Random(seed)


def integer_text():
    kind = rng.random()
    if kind < 0.05:
        return "-0"
    bits = rng.choice([8, 31, 53, 63, 64, 65, 100, 200, 400])
    n = rng.getrandbits(bits)
    return str(-n if rng.random() < 0.4 else n)


def float_text():
    kind = rng.random()
    if kind < 0.6:
        while True:
            f = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
            if f == f and f not in (float("inf"), float("-inf")):
                break
        text = repr(f)
        if "e" in text and rng.random() < 0.5:
            text = text.replace("e", "E")
        if "e" not in text and "E" not in text and rng.random() < 0.3:
            text += "0" * rng.randint(1, 3)
        return text
    if kind < 0.8:
        mantissa = str(rng.getrandbits(rng.choice([10, 40, 60])))
        point = rng.randint(1, len(mantissa))
        sign = "-" if rng.random() < 0.3 else ""
        return f"{sign}{mantissa[:point]}.{mantissa[point:] or '0'}"
    exp = rng.randint(-330, 330)
    sign = rng.choice(["", "+", "-"]) if exp >= 0 else "-"
    return f"{rng.randint(0, 999)}.{rng.randint(0, 999)}e{sign}{abs(exp)}"


def string_text():
    chars = []
    for _ in range(rng.randint(0, 8)):
        kind = rng.random()
        if kind < 0.4:
            chars.append(chr(rng.randint(0x20, 0x7E)))
        elif kind < 0.5:
            chars.append(chr(rng.randint(0, 0x1F)))
        elif kind < 0.65:
            chars.append(chr(rng.randint(0xD800, 0xDFFF)))
        elif kind < 0.7:
            chars.append("\U0010ffff")
        elif kind < 0.8:
            chars.append(chr(rng.randint(0x10000, 0x10FFFF)))
        elif kind < 0.85:
            chars.append(rng.choice(BOUNDARY))
        else:
            c = rng.randint(0x80, 0xFFFF)
            chars.append(chr(c))
    return spelled("".join(chars))


# The characters either side of the surrogates, and the ends of the planes.
BOUNDARY = ["\ud7fe", "\ud7ff", "\ue000", "\ufeff", "\uffff", "\U00010000", "\U0010ffff"]


def spelled(value):
    """`value` as JSON text: escaped, or raw where UTF-8 can hold it."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
        raw = True
    except UnicodeEncodeError:
        raw = False
    return json.dumps(value, ensure_ascii=not raw or rng.random() < 0.5)


def key_string():
    """A short key, most often of the characters about the surrogates."""
    chars = []
    for _ in range(rng.randint(0, 3)):
        kind = rng.random()
        if kind < 0.3:
            chars.append(chr(rng.randint(0xD800, 0xDFFF)))
        elif kind < 0.5:
            chars.append(rng.choice(BOUNDARY))
        elif kind < 0.65:
            chars.append(chr(rng.randint(0xE000, 0xFFFF)))
        elif kind < 0.8:
            chars.append(chr(rng.randint(0x10000, 0x10FFFF)))
        else:
            chars.append(rng.choice("aZ0 ~\x00\x01"))
    return "".join(chars)


def object_text(depth):
    keys = {key_string() if rng.random() < 0.7 else f"k{i}" for i in range(rng.randint(0, 5))}
    # Distinct once read (a high and a low surrogate spelled apart read as one character).
    keys = list({json.loads(spelled(k)): k for k in keys}.values())
    rng.shuffle(keys)
    return "{" + ", ".join(f"{spelled(k)}: {value_text(depth + 1)}" for k in keys) + "}"


def by_key(value):
    """`value` with every object's keys in the order `sort_keys` writes them."""
    if isinstance(value, dict):
        return {k: by_key(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [by_key(v) for v in value]
    return value


def value_text(depth=0):
    kind = rng.random()
    if depth < 3 and kind < 0.1:
        return "[" + ", ".join(value_text(depth + 1) for _ in range(rng.randint(0, 4))) + "]"
    if depth < 3 and kind < 0.2:
        return object_text(depth)
    if kind < 0.4:
        return integer_text()
    if kind < 0.75:
        return float_text()
    if kind < 0.97:
        return string_text()
    return rng.choice(["true", "false", "null"])


def line(body):
    return json.dumps(body, separators=(",", ":")) if not isinstance(body, str) else body


inputs, expected = [], []
msg = 0


def send(text, reply):
    global msg
    inputs.append(text)
    expected.append(json.dumps(reply))


subscribe = {"type": "subscribe", "msg_id": 2**64, "event_types": ["Put", "Add", "Keyed"]}
send(json.dumps(subscribe), {"type": "subscribed", "in_reply_to": 2**64, "event_types": ["Put", "Add", "Keyed"]})
keys = set()
total = 0
for i in range(count):
    text = value_text()
    value = json.loads(text)
    while True:
        key = rng.getrandbits(rng.choice([20, 64, 65, 90])) * rng.choice([1, -1])
        if key not in keys:
            keys.add(key)
            break
    msg_id = rng.getrandbits(rng.choice([16, 70]))
    send(
        '{"type":"event","msg_id":%d,"event":{"type":"Put","id":%d,"payload":{"k":%d,"v":%s}}}' % (msg_id, key, key, text),
        {"type": "read_models_updated", "in_reply_to": msg_id, "event_id": str(key), "updated_models": ["values"]},
    )
    send(
        json.dumps({"type": "query", "msg_id": msg_id + 1, "model": "values", "key": str(key)}),
        {"type": "query_result", "in_reply_to": msg_id + 1, "model": "values", "key": str(key), "document": {"v": by_key(value)}},
    )
    if i % 4 == 0:
        by = int(integer_text()) or 1
        total += by
        send(
            '{"type":"event","msg_id":%d,"event":{"type":"Add","id":"add-%d","payload":{"k":"sum","by":%d}}}' % (i, i, by),
            {"type": "read_models_updated", "in_reply_to": i, "event_id": f"add-{i}", "updated_models": ["total"]},
        )
        send(
            json.dumps({"type": "query", "msg_id": i, "model": "total", "key": "sum"}),
            {"type": "query_result", "in_reply_to": i, "model": "total", "key": "sum", "document": {"n": total}},
        )

# Documents under string keys, then read back a page at a time, `next`
# passed back as `after`: pages follow the keys in `sorted` order.
documents = {}
while len(documents) < count // 10:
    key = json.loads(spelled(key_string()))
    if key in documents:
        continue
    documents[key] = len(documents)
    send(
        '{"type":"event","msg_id":%d,"event":{"type":"Keyed","id":"keyed-%d","payload":{"k":%s,"v":%d}}}'
        % (documents[key], documents[key], spelled(key), documents[key]),
        {"type": "read_models_updated", "in_reply_to": documents[key], "event_id": f"keyed-{documents[key]}", "updated_models": ["keyed"]},
    )
ordered = sorted(documents)
after = None
for page in range(0, len(ordered), 7):
    keys = ordered[page : page + 7]
    following = keys[-1] if page + 7 < len(ordered) else None
    query = {"type": "query", "msg_id": page, "model": "keyed", "limit": 7}
    if after is not None:
        query["after"] = after
    send(
        spelled(query),
        {"type": "query_result", "in_reply_to": page, "model": "keyed", "documents": {k: {"v": documents[k]} for k in keys}, "total": len(ordered), "next": following},
    )
    after = following

with open(input_path, "w", encoding="utf-8") as f:
    f.write("\n".join(inputs) + "\n")
with open(expected_path, "w", encoding="utf-8") as f:
    f.write("\n".join(expected) + "\n")
