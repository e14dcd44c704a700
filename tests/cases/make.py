"""Writes the stdio cases in this folder (tests/cases/*.json, the conformance-case format).

The expected replies are written here by hand, as Python dicts, and rendered with
json.dumps defaults: the exact format the protocol promises. Edit this file and run
`python3 tests/cases/make.py` to regenerate; `cargo test` and the conformance runner
(`run.py --cases tests/cases`) both run the result against the binary.
"""
import json, pathlib, sys

OUT = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parent
OUT.mkdir(parents=True, exist_ok=True)
for old in OUT.glob("*.json"):
    old.unlink()

def line(x):
    return x if isinstance(x, str) else json.dumps(x, separators=(",", ":"), ensure_ascii=False)

def reply(x):
    return json.dumps(x)

def ev(msg_id, typ, payload, id=None, **extra):
    e = {"type": typ}
    if id is not None:
        e["id"] = id
    e["payload"] = payload
    e.update(extra)
    return {"type": "event", "msg_id": msg_id, "event": e}

def env(body, src="eventbus", dest="projector"):
    return {"src": src, "dest": dest, "body": body}

def updated(r, eid, models):
    return {"type": "read_models_updated", "in_reply_to": r, "event_id": eid, "updated_models": models}

def skipped(r, eid, reason="already_processed"):
    return {"type": "event_skipped", "in_reply_to": r, "event_id": eid, "reason": reason}

def err(r, code, text):
    return {"type": "error", "in_reply_to": r, "code": code, "text": text}

def q(r, model, key):
    return {"type": "query", "msg_id": r, "model": model, "key": key}

def doc(r, model, key, d):
    return {"type": "query_result", "in_reply_to": r, "model": model, "key": key, "document": d}

n = 0
def case(name, steps, config=None, args=None):
    global n
    n += 1
    c = {"name": name, "source": "projector's own protocol tests"}
    if args:
        c["args"] = args
    if config is not None:
        c["config"] = config
        c["args"] = ["--config", "{config}"] + (args or [])
    c["input"] = [line(i) for i, _ in steps]
    c["expected"] = [reply(o) for _, o in steps if o is not None]
    (OUT / f"{n:02d}_{name}.json").write_text(json.dumps(c, indent=2, ensure_ascii=False) + "\n")

OPS = '''
[[model]]
name = "accounts"
key = "$.payload.account"
on.Opened = { put = { owner = "$.payload.owner", tier = "$.payload.tier", status = { value = "open" }, version = 1 } }
on.Renamed = { merge = { owner = "$.payload.owner", tier = "$.payload.tier" } }
on.Deposited = { increment = { balance = "$.payload.amount", deposits = 1 } }
on.Flagged = { merge = { flag = { path = "$.payload.reason", missing = "null" } } }
on.Unflagged = { unset = ["flag", "tier"] }
on.Audited = { merge = { auditor = { path = "$.payload.auditor", missing = "fail" } } }
on.Closed = { delete = true }

[[model]]
name = "owners"
key = "$.payload.owner"
on.Opened = { optional = true, increment = { accounts = 1 }, merge = { last_account = "$.payload.account" } }
on.Tagged = { put = { tags = "$.payload.items[*].tag", first = "$.payload.items[0].tag", when = "$.meta.at" } }
'''

U = "UserCreated"
# ---- protocol -------------------------------------------------------------
case("init_is_acknowledged", [
    ({"type": "init", "msg_id": 1, "node_id": "n1", "node_ids": ["n1", "n2"]}, {"type": "init_ok", "in_reply_to": 1}),
])
case("envelope_flag_wraps_replies_from_the_node_id", [
    (env({"type": "init", "msg_id": 1, "node_id": "n7", "node_ids": ["n7"]}, src="c1", dest="n7"),
     {"src": "n7", "dest": "c1", "body": {"type": "init_ok", "in_reply_to": 1}}),
    (env({"type": "subscribe", "msg_id": 2, "event_types": [U]}, src="bus"),
     {"src": "n7", "dest": "bus", "body": {"type": "subscribed", "in_reply_to": 2, "event_types": [U]}}),
], args=["--envelope"])
case("envelope_before_init_answers_from_the_dest_it_was_sent_to", [
    (env(ev(1, U, {"id": "user-5", "name": "A"})),
     {"src": "projector", "dest": "eventbus", "body": updated(1, "evt-5", ["user_listing", "user_by_email"])}),
], args=["--envelope"])
case("bare_bodies_and_blank_lines", [
    ("", None),
    ({"type": "subscribe", "msg_id": 1, "event_types": [U]}, {"type": "subscribed", "in_reply_to": 1, "event_types": [U]}),
    ("   ", None),
    (ev(2, U, {"id": "user-1"}, id="e1"), updated(2, "e1", ["user_listing", "user_by_email"])),
])
case("subscriptions_add_up", [
    ({"type": "subscribe", "msg_id": 1, "event_types": ["UserCreated"]}, {"type": "subscribed", "in_reply_to": 1, "event_types": ["UserCreated"]}),
    ({"type": "subscribe", "msg_id": 2, "event_types": ["UserDeleted"]}, {"type": "subscribed", "in_reply_to": 2, "event_types": ["UserDeleted"]}),
    (ev(3, "UserCreated", {"id": "u1"}, id="e1"), updated(3, "e1", ["user_listing", "user_by_email"])),
    (ev(4, "UserUpdated", {"id": "u1", "name": "B"}, id="e2"), skipped(4, "e2", "not_subscribed")),
    (ev(5, "UserDeleted", {"id": "u1"}, id="e3"), updated(5, "e3", ["user_listing", "user_by_email"])),
])
case("a_skipped_unsubscribed_event_is_not_recorded", [
    ({"type": "subscribe", "msg_id": 1, "event_types": ["UserUpdated"]}, {"type": "subscribed", "in_reply_to": 1, "event_types": ["UserUpdated"]}),
    (ev(2, U, {"id": "u1", "email": "a@x"}, id="e1"), skipped(2, "e1", "not_subscribed")),
    ({"type": "subscribe", "msg_id": 3, "event_types": [U]}, {"type": "subscribed", "in_reply_to": 3, "event_types": [U]}),
    (ev(4, U, {"id": "u1", "email": "a@x"}, id="e1"), updated(4, "e1", ["user_listing", "user_by_email"])),
])
case("redelivery_is_skipped_before_the_subscription_check", [
    (ev(1, U, {"id": "u1"}, id="e1"), updated(1, "e1", ["user_listing", "user_by_email"])),
    ({"type": "subscribe", "msg_id": 2, "event_types": ["UserDeleted"]}, {"type": "subscribed", "in_reply_to": 2, "event_types": ["UserDeleted"]}),
    (ev(3, U, {"id": "u1"}, id="e1"), skipped(3, "e1")),
    (ev(4, U, {"id": "u2"}, id="e2"), skipped(4, "e2", "not_subscribed")),
])
case("unsubscribe_removes_types", [
    ({"type": "subscribe", "msg_id": 1, "event_types": [U, "UserDeleted"]}, {"type": "subscribed", "in_reply_to": 1, "event_types": [U, "UserDeleted"]}),
    ({"type": "unsubscribe", "msg_id": 2, "event_types": [U]}, {"type": "unsubscribed", "in_reply_to": 2, "event_types": [U]}),
    (ev(3, U, {"id": "u1"}, id="e1"), skipped(3, "e1", "not_subscribed")),
    (ev(4, "UserDeleted", {"id": "u1"}, id="e2"), updated(4, "e2", [])),
    ({"type": "unsubscribe", "msg_id": 5, "event_types": ["UserDeleted"]}, {"type": "unsubscribed", "in_reply_to": 5, "event_types": ["UserDeleted"]}),
    (ev(6, "UserDeleted", {"id": "u1"}, id="e3"), skipped(6, "e3", "not_subscribed")),
])
case("unsubscribe_first_keeps_every_other_configured_type", [
    ({"type": "unsubscribe", "msg_id": 1, "event_types": ["UserUpdated"]}, {"type": "unsubscribed", "in_reply_to": 1, "event_types": ["UserUpdated"]}),
    (ev(2, "UserUpdated", {"id": "u1", "name": "A"}, id="e1"), skipped(2, "e1", "not_subscribed")),
    (ev(3, U, {"id": "u1", "name": "A"}, id="e2"), updated(3, "e2", ["user_listing", "user_by_email"])),
])
case("types_no_model_reacts_to_are_acknowledged_and_deduplicated", [
    (ev(1, "OrderPlaced", {"order_id": "o1"}, id="e1"), updated(1, "e1", [])),
    (ev(2, "OrderPlaced", {"order_id": "o1"}, id="e1"), skipped(2, "e1")),
    ({"type": "subscribe", "msg_id": 3, "event_types": ["OrderPlaced"]}, {"type": "subscribed", "in_reply_to": 3, "event_types": ["OrderPlaced"]}),
    (ev(4, "OrderPlaced", {"order_id": "o2"}, id="e2"), updated(4, "e2", [])),
    (ev(5, U, {"id": "u1"}, id="e3"), skipped(5, "e3", "not_subscribed")),
])
case("ids_are_derived_only_when_absent", [
    (ev(1, U, {"id": "user-7", "name": "A"}), updated(1, "evt-7", ["user_listing", "user_by_email"])),
    (ev(2, U, {"id": "user-8"}, id="custom-1"), updated(2, "custom-1", ["user_listing", "user_by_email"])),
    (ev(3, "UserDeleted", {"id": "user-7"}, id=42), updated(3, "42", ["user_listing", "user_by_email"])),
    (ev(4, "UserDeleted", {"id": "user-9"}, id=42), skipped(4, "42")),
    (ev(5, "UserUpdated", {"id": "user-7", "name": "B"}), skipped(5, "evt-7")),
])
case("an_event_with_no_id_is_refused_and_changes_nothing", [
    (ev(1, U, {"id": "anna", "name": "A"}), err(1, 12, 'the event has no id at $.id, and none can be derived: $.payload.id = "anna" does not match /([0-9]+)$/')),
    (ev(2, U, {"name": "A"}), err(2, 12, "the event has no id at $.id, and none can be derived: $.payload.id is not a string or number")),
    (q(3, "user_listing", "anna"), doc(3, "user_listing", "anna", None)),
    (ev(4, U, {"id": "u1"}, id={"a": 1}), err(4, 12, "the event id at $.id must be a string or a number, found an object")),
])
case("non_ascii_is_escaped_in_replies", [
    (ev(1, U, {"id": "user-1", "name": "Zoë 😀", "email": "z@x"}, id="é-1"), updated(1, "é-1", ["user_listing", "user_by_email"])),
    (q(2, "user_listing", "user-1"), doc(2, "user_listing", "user-1", {"email": "z@x", "id": "user-1", "name": "Zoë 😀"})),
])
# ---- the bundled read models ----------------------------------------------
case("bundled_models_follow_a_user", [
    (ev(1, U, {"id": "u1", "name": "Ann", "email": "ann@x"}, id="e1"), updated(1, "e1", ["user_listing", "user_by_email"])),
    (ev(2, "UserUpdated", {"id": "u1", "name": "Anne"}, id="e2"), updated(2, "e2", ["user_listing"])),
    (ev(3, "UserUpdated", {"id": "u1", "email": "anne@x"}, id="e3"), updated(3, "e3", ["user_listing", "user_by_email"])),
    (q(4, "user_listing", "u1"), doc(4, "user_listing", "u1", {"email": "anne@x", "id": "u1", "name": "Anne"})),
    (q(5, "user_by_email", "u1"), doc(5, "user_by_email", "u1", {"email": "anne@x", "id": "u1"})),
    (ev(6, "UserDeleted", {"id": "u1"}, id="e4"), updated(6, "e4", ["user_listing", "user_by_email"])),
    (ev(7, "UserDeleted", {"id": "u1"}, id="e5"), updated(7, "e5", [])),
    (q(8, "user_listing", "u1"), doc(8, "user_listing", "u1", None)),
])
case("user_created_without_email_is_recorded_with_null", [
    (ev(1, U, {"id": "user-123", "name": "John"}), updated(1, "evt-123", ["user_listing", "user_by_email"])),
    (q(2, "user_by_email", "user-123"), doc(2, "user_by_email", "user-123", {"email": None, "id": "user-123"})),
])
# ---- operations -----------------------------------------------------------
A = "accounts"
case("put_replaces_the_whole_document", [
    (ev(1, "Opened", {"account": "a1", "owner": "ann", "tier": "gold"}, id="e1"), updated(1, "e1", ["accounts", "owners"])),
    (ev(2, "Deposited", {"account": "a1", "amount": 5}, id="e2"), updated(2, "e2", ["accounts"])),
    (ev(3, "Opened", {"account": "a1", "owner": "bob"}, id="e3"), updated(3, "e3", ["accounts", "owners"])),
    (q(4, A, "a1"), doc(4, A, "a1", {"owner": "bob", "status": "open", "tier": None, "version": 1})),
], config=OPS)
case("merge_sets_present_fields_and_upserts", [
    (ev(1, "Renamed", {"account": "a1", "owner": "ann"}, id="e1"), updated(1, "e1", ["accounts"])),
    (q(2, A, "a1"), doc(2, A, "a1", {"owner": "ann"})),
    (ev(3, "Renamed", {"account": "a1", "tier": "gold"}, id="e2"), updated(3, "e2", ["accounts"])),
    (ev(4, "Renamed", {"account": "a1", "tier": "gold"}, id="e3"), updated(4, "e3", [])),
    (ev(5, "Renamed", {"account": "a2"}, id="e4"), updated(5, "e4", [])),
    (q(6, A, "a1"), doc(6, A, "a1", {"owner": "ann", "tier": "gold"})),
    (q(7, A, "a2"), doc(7, A, "a2", None)),
], config=OPS)
case("increment_creates_at_zero_and_adds", [
    (ev(1, "Deposited", {"account": "a1", "amount": 10}, id="e1"), updated(1, "e1", ["accounts"])),
    (ev(2, "Deposited", {"account": "a1", "amount": 2.5}, id="e2"), updated(2, "e2", ["accounts"])),
    (ev(3, "Deposited", {"account": "a1"}, id="e3"), updated(3, "e3", ["accounts"])),
    (q(4, A, "a1"), doc(4, A, "a1", {"balance": 12.5, "deposits": 3})),
    (ev(5, "Deposited", {"account": "a1", "amount": "ten"}, id="e4"),
     err(5, 12, 'event e4 (Deposited) was not applied, and no read model changed: read model "accounts": increment of "balance" by $.payload.amount needs a number, found a string')),
    (ev(6, "Deposited", {"account": "a1", "amount": 0}, id="e4"), updated(6, "e4", ["accounts"])),
], config=OPS)
COUNTS = '''
[[model]]
name = "hits"
key = "$.payload.page"
on.Hit = { increment = { total = 1 } }

[[model]]
name = "pages"
key = "$.payload.page"
on.Labelled = { put = { hits = "$.payload.label" } }
on.Hit = { increment = { hits = 1 } }
'''
case("increment_of_text_fails_the_whole_event", [
    (ev(1, "Hit", {"page": "p1"}, id="e1"), updated(1, "e1", ["hits", "pages"])),
    (ev(2, "Labelled", {"page": "p1", "label": "many"}, id="e2"), updated(2, "e2", ["pages"])),
    (ev(3, "Hit", {"page": "p1"}, id="e3"),
     err(3, 22, 'event e3 (Hit) was not applied, and no read model changed: read model "pages": cannot increment field "hits" of document "p1", which holds a string')),
    (q(4, "hits", "p1"), doc(4, "hits", "p1", {"total": 1})),
    (ev(5, "Labelled", {"page": "p1", "label": 10}, id="e4"), updated(5, "e4", ["pages"])),
    (ev(6, "Hit", {"page": "p1"}, id="e3"), updated(6, "e3", ["hits", "pages"])),
    (q(7, "pages", "p1"), doc(7, "pages", "p1", {"hits": 11})),
], config=COUNTS)
case("unset_removes_fields_and_never_creates", [
    (ev(1, "Flagged", {"account": "a1", "reason": "fraud"}, id="e1"), updated(1, "e1", ["accounts"])),
    (ev(2, "Renamed", {"account": "a1", "tier": "gold"}, id="e2"), updated(2, "e2", ["accounts"])),
    (ev(3, "Unflagged", {"account": "a1"}, id="e3"), updated(3, "e3", ["accounts"])),
    (ev(4, "Unflagged", {"account": "a1"}, id="e4"), updated(4, "e4", [])),
    (ev(5, "Unflagged", {"account": "zz"}, id="e5"), updated(5, "e5", [])),
    (q(6, A, "a1"), doc(6, A, "a1", {})),
    (q(7, A, "zz"), doc(7, A, "zz", None)),
], config=OPS)
case("delete_removes_and_reports_only_real_deletions", [
    (ev(1, "Renamed", {"account": "a1", "owner": "ann"}, id="e1"), updated(1, "e1", ["accounts"])),
    (ev(2, "Closed", {"account": "a1"}, id="e2"), updated(2, "e2", ["accounts"])),
    (ev(3, "Closed", {"account": "a1"}, id="e3"), updated(3, "e3", [])),
    (q(4, A, "a1"), doc(4, A, "a1", None)),
], config=OPS)
case("missing_policies_null_and_fail", [
    (ev(1, "Flagged", {"account": "a1"}, id="e1"), updated(1, "e1", ["accounts"])),
    (q(2, A, "a1"), doc(2, A, "a1", {"flag": None})),
    (ev(3, "Audited", {"account": "a1"}, id="e2"),
     err(3, 12, 'event e2 (Audited) was not applied, and no read model changed: read model "accounts": field "auditor" needs $.payload.auditor (missing = "fail"), which the event does not have')),
    (ev(4, "Audited", {"account": "a1", "auditor": "kim"}, id="e2"), updated(4, "e2", ["accounts"])),
    (q(5, A, "a1"), doc(5, A, "a1", {"auditor": "kim", "flag": None})),
], config=OPS)
case("a_missing_required_key_refuses_the_event_atomically", [
    (ev(1, "Opened", {"owner": "ann"}, id="e1"),
     err(1, 12, 'event e1 (Opened) was not applied, and no read model changed: read model "accounts" needs a document key at $.payload.account, which the event does not have')),
    ({"type": "query", "msg_id": 2, "model": "owners", "key": "ann"}, doc(2, "owners", "ann", None)),
    (ev(3, "Opened", {"owner": "ann", "account": "a1"}, id="e1"), updated(3, "e1", ["accounts", "owners"])),
    ({"type": "query", "msg_id": 4, "model": "owners", "key": "ann"}, doc(4, "owners", "ann", {"accounts": 1, "last_account": "a1"})),
], config=OPS)
case("an_optional_binding_with_no_key_skips_its_model", [
    (ev(1, "Opened", {"account": "a1"}, id="e1"), updated(1, "e1", ["accounts"])),
    (ev(2, "Opened", {"account": 7, "owner": 3.0}, id="e2"), updated(2, "e2", ["accounts", "owners"])),
    (q(3, A, 7), doc(3, A, "7", {"owner": 3.0, "status": "open", "tier": None, "version": 1})),
    ({"type": "query", "msg_id": 4, "model": "owners", "key": "3"}, doc(4, "owners", "3", {"accounts": 1, "last_account": 7})),
], config=OPS)
case("paths_with_wildcards_collect_arrays", [
    (ev(1, "Tagged", {"owner": "ann", "items": [{"tag": "a"}, {"tag": "b"}]}, id="e1", meta={"at": "2026-01-01"}), updated(1, "e1", ["owners"])),
    ({"type": "query", "msg_id": 2, "model": "owners", "key": "ann"}, doc(2, "owners", "ann", {"first": "a", "tags": ["a", "b"], "when": "2026-01-01"})),
], config=OPS)
# ---- query ----------------------------------------------------------------
def lst(r, model, docs, total, nxt):
    return {"type": "query_result", "in_reply_to": r, "model": model, "documents": docs, "total": total, "next": nxt}
case("query_lists_documents_in_key_order_with_paging", [
    (ev(1, U, {"id": "u3", "name": "C"}, id="e3"), updated(1, "e3", ["user_listing", "user_by_email"])),
    (ev(2, U, {"id": "u1", "name": "A"}, id="e1"), updated(2, "e1", ["user_listing", "user_by_email"])),
    (ev(3, U, {"id": "u2", "name": "B"}, id="e2"), updated(3, "e2", ["user_listing", "user_by_email"])),
    ({"type": "query", "msg_id": 4, "model": "user_by_email", "limit": 2},
     lst(4, "user_by_email", {"u1": {"email": None, "id": "u1"}, "u2": {"email": None, "id": "u2"}}, 3, "u2")),
    ({"type": "query", "msg_id": 5, "model": "user_by_email", "limit": 2, "after": "u2"},
     lst(5, "user_by_email", {"u3": {"email": None, "id": "u3"}}, 3, None)),
    ({"type": "query", "msg_id": 6, "model": "user_listing", "limit": 1, "after": "u1"}, lst(6, "user_listing", {"u2": {"email": None, "id": "u2", "name": "B"}}, 3, "u2")),
])
case("query_errors", [
    ({"type": "query", "msg_id": 1, "model": "users"}, err(1, 12, 'query: unknown read model "users"; the read models are: user_listing, user_by_email, user_activity, long_sessions')),
    ({"type": "query", "msg_id": 2}, err(2, 12, 'query: "model" must name a read model')),
    ({"type": "query", "msg_id": 3, "model": "user_listing", "key": ["u1"]}, err(3, 12, 'query: "key" must be a string or a number, found an array')),
    ({"type": "query", "msg_id": 4, "model": "user_listing", "limit": -1}, err(4, 12, 'query: "limit" must be a whole number from 1 to 1000 (a larger one is cut to 1000)')),
    ({"type": "query", "msg_id": 5, "model": "user_listing", "limit": 0}, err(5, 12, 'query: "limit" must be a whole number from 1 to 1000 (a larger one is cut to 1000)')),
])
# ---- bad input ------------------------------------------------------------
case("malformed_lines_get_errors_and_the_next_line_is_served", [
    ("{not json", err(None, 12, "input line 1 is not valid JSON: key must be a string at column 2")),
    ('{"type": "init", "msg_id": 1', err(None, 12, "input line 2 is not valid JSON: EOF while parsing an object at column 28")),
    ("[1, 2]", err(None, 12, "input line 3 must be a JSON object, found an array")),
    ('"event"', err(None, 12, "input line 4 must be a JSON object, found a string")),
    ({"msg_id": 5}, err(5, 12, 'the message has no "type"')),
    ({"type": 7, "msg_id": 6}, err(6, 12, 'the message\'s "type" must be a string, found a number')),
    ({"type": "ping", "msg_id": 7}, err(7, 10, 'unsupported message type "ping"; this projector handles init, subscribe, unsubscribe, event, query')),
    ({"src": "c", "dest": "p", "body": [1]}, err(None, 12, 'input line 8: the envelope\'s "body" must be an object, found an array')),
    (ev(9, U, {"id": "u1"}, id="e1"), updated(9, "e1", ["user_listing", "user_by_email"])),
    # Shaped like an event message, field by field, but arrays all the same.
    ({"src": "c", "dest": "p", "body": ["event", 10, {"type": U, "id": "e2", "payload": {"id": "u2"}}]},
     err(None, 12, 'input line 10: the envelope\'s "body" must be an object, found an array')),
    ([None, None, "event", 11, {"type": U, "id": "e3", "payload": {"id": "u3"}}, None],
     err(None, 12, "input line 11 must be a JSON object, found an array")),
])
case("malformed_events", [
    ({"type": "event", "msg_id": 1}, err(1, 12, 'the event message has no "event"')),
    ({"type": "event", "msg_id": 2, "event": "UserCreated"}, err(2, 12, '"event" must be an object, found a string')),
    ({"type": "event", "msg_id": 3, "event": {"id": "e1", "payload": {}}}, err(3, 12, 'the event has no "type"')),
    ({"type": "event", "msg_id": 4, "event": {"type": ["x"], "id": "e1", "payload": {}}}, err(4, 12, 'the event\'s "type" must be a string, found an array')),
    ({"type": "event", "msg_id": 5, "event": {"type": U, "id": "e1"}}, err(5, 12, 'the event has no "payload"')),
    (ev(6, U, {"id": "u1"}, id="e1"), updated(6, "e1", ["user_listing", "user_by_email"])),
])
case("subscribe_needs_a_list_of_names", [
    ({"type": "subscribe", "msg_id": 1, "event_types": U}, err(1, 12, 'subscribe: "event_types" must be an array of event type names')),
    ({"type": "unsubscribe", "msg_id": 2, "event_types": [1]}, err(2, 12, 'unsubscribe: "event_types" must be an array of event type names')),
    (ev(3, U, {"id": "u1"}, id="e1"), updated(3, "e1", ["user_listing", "user_by_email"])),
])
case("a_line_over_the_limit_is_refused_and_skipped", [
    (ev(1, U, {"id": "u1", "name": "x" * 200}, id="e1"), err(None, 12, "input line 1 is 300 bytes long, over the limit of 200 bytes (--max-line-bytes)")),
    (ev(2, U, {"id": "u1"}, id="e1"), updated(2, "e1", ["user_listing", "user_by_email"])),
], args=["--max-line-bytes", "200"])
case("msg_ids_are_echoed_as_given", [
    ({"type": "init", "msg_id": "abc", "node_id": "n1"}, {"type": "init_ok", "in_reply_to": "abc"}),
    ({"type": "init", "node_id": "n1"}, {"type": "init_ok", "in_reply_to": None}),
    ({"type": "init", "msg_id": 1.5, "node_id": "n1"}, {"type": "init_ok", "in_reply_to": 1.5}),
])
case("a_bare_message_may_carry_a_body_field", [
    ({"type": "init", "msg_id": 7, "node_id": "n1", "body": "hello"}, {"type": "init_ok", "in_reply_to": 7}),
    ({"type": "subscribe", "msg_id": 8, "event_types": [U], "body": {"type": "init"}}, {"type": "subscribed", "in_reply_to": 8, "event_types": [U]}),
])
# ---- the projection language: conditions, templates, field operations ----
LANG = '''
[[model]]
name = "carts"
key = "{$.payload.tenant}/{$.payload.cart}"
[model.on.ItemAdded]
append = { items = "$.payload.sku" }
add_to_set = { skus = "$.payload.sku" }
max = { top_price = "$.payload.price" }
min = { low_price = "$.payload.price" }
set_if_absent = { opened_by = { meta = "event_id" } }
merge = { "totals.last_position" = { meta = "position" }, "totals.last_type" = { meta = "event_type" } }
increment = { "totals.count" = 1 }
[model.on.ItemRemoved]
remove = { items = "$.payload.sku" }
increment = { "totals.count" = -1 }
[model.on.CartLabelled]
merge = { items = "$.payload.label", top_price = "$.payload.label" }

[[model]]
name = "vip_items"
key = "$.payload.sku"
[model.on.ItemAdded]
when = [{ path = "$.payload.price", gt = 100 }, { path = "$.payload.tier", in = ["gold", "platinum"] }]
put = { price = "$.payload.price" }
'''
C = "carts"
def item(r, eid, typ, **p):
    payload = {"tenant": "t1", "cart": "c1"}
    payload.update(p)
    return ev(r, typ, payload, id=eid)
case("list_and_extreme_operations", [
    (item(1, "e1", "ItemAdded", sku="a", price=30), updated(1, "e1", ["carts"])),
    (item(2, "e2", "ItemAdded", sku="b", price=5.5), updated(2, "e2", ["carts"])),
    (item(3, "e3", "ItemAdded", sku="a", price=20), updated(3, "e3", ["carts"])),
    (item(4, "e4", "ItemRemoved", sku="a"), updated(4, "e4", ["carts"])),
    (item(5, "e5", "ItemRemoved", sku="zz"), updated(5, "e5", ["carts"])),
    (q(6, C, "t1/c1"), doc(6, C, "t1/c1", {"items": ["b"], "low_price": 5.5, "opened_by": "e1", "skus": ["a", "b"],
                                           "top_price": 30, "totals": {"count": 1, "last_position": 3, "last_type": "ItemAdded"}})),
], config=LANG)
case("conditions_decide_which_models_an_event_updates", [
    (item(1, "e1", "ItemAdded", sku="a", price=300, tier="gold"), updated(1, "e1", ["carts", "vip_items"])),
    (item(2, "e2", "ItemAdded", sku="b", price=300, tier="silver"), updated(2, "e2", ["carts"])),
    (item(3, "e3", "ItemAdded", sku="c", price=100, tier="gold"), updated(3, "e3", ["carts"])),
    (item(4, "e4", "ItemAdded", sku="d", tier="gold"), updated(4, "e4", ["carts"])),
    (q(5, "vip_items", "a"), doc(5, "vip_items", "a", {"price": 300})),
    (q(6, "vip_items", "b"), doc(6, "vip_items", "b", None)),
], config=LANG)
case("a_key_template_needs_every_part", [
    (ev(1, "ItemAdded", {"tenant": "t1", "sku": "a"}, id="e1"),
     err(1, 12, 'event e1 (ItemAdded) was not applied, and no read model changed: read model "carts" needs a document key at {$.payload.tenant}/{$.payload.cart}, which the event does not have')),
    (ev(2, "ItemAdded", {"tenant": "t1", "cart": 7, "sku": "a"}, id="e1"), updated(2, "e1", ["carts"])),
    (q(3, C, "t1/7"), doc(3, C, "t1/7", {"items": ["a"], "opened_by": "e1", "skus": ["a"], "totals": {"count": 1, "last_position": 2, "last_type": "ItemAdded"}})),
], config=LANG)
case("list_and_extreme_operations_refuse_stored_values_of_another_type", [
    (item(1, "e1", "CartLabelled", label="gift"), updated(1, "e1", ["carts"])),
    (item(2, "e2", "ItemAdded", sku="a", price=3),
     err(2, 22, 'event e2 (ItemAdded) was not applied, and no read model changed: read model "carts": cannot append field "items" of document "t1/c1", which holds a string')),
    (item(3, "e3", "ItemRemoved", sku="a"),
     err(3, 22, 'event e3 (ItemRemoved) was not applied, and no read model changed: read model "carts": cannot remove field "items" of document "t1/c1", which holds a string')),
    (q(4, C, "t1/c1"), doc(4, C, "t1/c1", {"items": "gift", "top_price": "gift"})),
], config=LANG)
# ---- paths that select several values ---------------------------------------
MANY = '''
[[model]]
name = "carts"
key = "$.payload.cart"
[model.on.ItemsAdded]
add_to_set = { skus = "$.payload.items[*].sku" }
append = { log = "$.payload.items[*].sku" }
increment = { total = "$.payload.items[*].price", lines = 1 }
max = { top = "$.payload.items[*].price" }
merge = { last = "$.payload.items[*].sku" }
[model.on.ItemsRemoved]
remove = { skus = "$.payload.items[*].sku" }

[[model]]
name = "big_carts"
key = "$.payload.cart"
[model.on.ItemsAdded]
when = { path = "$.payload.items[*].price", ge = 100 }
increment = { big = 1 }
'''
def items(msg_id, eid, typ, *pairs):
    return ev(msg_id, typ, {"cart": "c", "items": [{"sku": s, "price": p} for s, p in pairs]}, id=eid)
case("a_path_that_selects_several_values_yields_a_list_each_operation_takes", [
    # One match is a list of one, as two are: add_to_set adds each, append each,
    # increment sums, max keeps the largest, merge writes the list.
    (items(1, "e1", "ItemsAdded", ("x", 10), ("y", 120)), updated(1, "e1", ["carts", "big_carts"])),
    (items(2, "e2", "ItemsAdded", ("x", 5)), updated(2, "e2", ["carts"])),
    (q(3, "carts", "c"), doc(3, "carts", "c", {"last": ["x"], "lines": 2, "log": ["x", "y", "x"], "skus": ["x", "y"], "top": 120, "total": 135})),
    (items(4, "e4", "ItemsRemoved", ("x", 0), ("z", 0)), updated(4, "e4", ["carts"])),
    (q(5, "carts", "c"), doc(5, "carts", "c", {"last": ["x"], "lines": 2, "log": ["x", "y", "x"], "skus": ["y"], "top": 120, "total": 135})),
    (q(6, "big_carts", "c"), doc(6, "big_carts", "c", {"big": 1})),
    (ev(7, "ItemsAdded", {"cart": "c", "items": [{"sku": "w", "price": "free"}]}, id="e7"),
     err(7, 12, 'event e7 (ItemsAdded) was not applied, and no read model changed: read model "carts": increment of "total" by $.payload.items[*].price needs a number, found a string')),
], config=MANY)
# ---- messages over several lines --------------------------------------------
def pretty(x):
    return json.dumps(x, indent=2)
SUB = env({"type": "subscribe", "msg_id": 1, "event_types": ["UserCreated", "UserUpdated"]})
case("messages_over_several_lines_are_read_as_one", [
    # As the task shows them: pretty-printed (lines 1-12), or broken after a comma (13-15).
    (pretty(SUB), {"type": "subscribed", "in_reply_to": 1, "event_types": ["UserCreated", "UserUpdated"]}),
    ('{ "type": "event", "msg_id": 2,\n"event": {"type": "UserCreated",\n"payload": {"id": "user-123", "name": "John"}} }',
     updated(2, "evt-123", ["user_listing", "user_by_email"])),
    # A line cut short, then one that cannot go on with it: two messages (16, 17).
    ('{"type": "init", "msg_id": 3', err(None, 12, "input line 16 is not valid JSON: EOF while parsing an object at column 28")),
    ("[1, 2]", err(None, 12, "input line 17 must be a JSON object, found an array")),
    # Malformed over its lines (18-21): one error, where it goes wrong.
    ('{\n  "type": "init",\n  "msg_id": 5 6\n}', err(None, 12, "input line 20 is not valid JSON: expected `,` or `}` at column 15")),
    ('{"type": "query", "msg_id": 7, "model": "user_listing", "key": "user-123"}',
     doc(7, "user_listing", "user-123", {"email": None, "id": "user-123", "name": "John"})),
])
print(n, "cases")
