#!/usr/bin/env python3
"""
NAME
    25-im-registry-endpoint - IM is sent through the endpoint the work
    group registry names

DESCRIPTION
    Real PostgreSQL, heraldd and herald-worker (IM driver, libcurl) posting
    to tests/support/provider_sink.py. POLICY I3's registry
    (herald.im_groups, `heraldctl group add`) gives every work group an
    endpoint: the name of the worker's configuration entry that holds the
    webhook. Proves that heraldd's claim passes it in the JOB and the
    worker posts there: two groups that share one webhook entry, neither
    having an entry of its own name, are both delivered to it, each with
    its own group name in the post; a group whose endpoint the worker does
    not have becomes a dead letter that names the problem; and moving a
    group to another endpoint in the registry applies to its next message.
"""
from herald_harness import Stack, run_tests, wait_until
from provider_sink import Sink

stack = Stack("imendpoint")
sink = Sink()


def worker_config():
    return """
credit = 64;
heartbeat_ms = 200;
im = { timeout_ms = 5000; groups = (
  { name = "shared-hook"; provider = "generic"; url = "%s"; },
  { name = "other-hook"; provider = "generic"; url = "%s"; }
); };
""" % (sink.url("/generic/shared"), sink.url("/generic/other"))


def register(group, endpoint):
    stack.sql("SELECT herald.group_add('%s', 'team chat', 'ops-head@example.com', 'webhook', "
              "'%s', ARRAY['Operations'])" % (group, endpoint))


def send(group, text):
    p = stack.producer()
    rep = p.submit({"channel": "im", "from": "ops@example.com", "to": [group], "body": text})
    p.close()
    assert rep and rep.get("ok"), rep
    return rep["id"]


def state_of(mid):
    return stack.scalar("SELECT state FROM herald.deliveries WHERE message_id = %d" % mid)


def posted(path):
    return [r["json"] for r in sink.requests(path) if r.get("json")]


def test_I3_two_groups_sharing_one_registered_endpoint_are_both_posted_there():
    register("team-a", "shared-hook")
    register("team-b", "shared-hook")
    a = send("team-a", "hello team a")
    b = send("team-b", "hello team b")
    wait_until(lambda: state_of(a) == "sent" and state_of(b) == "sent", 15,
               what="both deliveries to be sent")
    docs = posted("/generic/shared")
    got = sorted((d.get("group"), d.get("body")) for d in docs)
    assert got == [("team-a", "hello team a"), ("team-b", "hello team b")], docs
    assert posted("/generic/other") == []


def test_I3_a_registered_endpoint_the_worker_lacks_is_a_dead_letter_naming_it():
    register("team-c", "no-such-hook")
    c = send("team-c", "nobody will see this")
    wait_until(lambda: state_of(c) == "failed", 15, what="the delivery to fail")
    err = stack.scalar("SELECT last_error FROM herald.deliveries WHERE message_id = %d" % c)
    assert err.startswith("unknown-group") and "registered endpoint" in err, err


def test_I3_moving_a_group_to_another_endpoint_applies_to_its_next_message():
    register("team-d", "shared-hook")
    first = send("team-d", "before the move")
    wait_until(lambda: state_of(first) == "sent", 15, what="the first delivery")
    register("team-d", "other-hook")
    second = send("team-d", "after the move")
    wait_until(lambda: state_of(second) == "sent", 15, what="the second delivery")
    assert ("team-d", "after the move") in [(d.get("group"), d.get("body"))
                                            for d in posted("/generic/other")]
    assert ("team-d", "after the move") not in [(d.get("group"), d.get("body"))
                                                for d in posted("/generic/shared")]


if __name__ == "__main__":
    try:
        with stack:
            stack.start_db()
            stack.start_heraldd()
            stack.start_worker(worker_config(), name="w1")
            stack.wait_worker_ready()
            run_tests([
                ("test_I3_two_groups_sharing_one_registered_endpoint_are_both_posted_there",
                 test_I3_two_groups_sharing_one_registered_endpoint_are_both_posted_there),
                ("test_I3_a_registered_endpoint_the_worker_lacks_is_a_dead_letter_naming_it",
                 test_I3_a_registered_endpoint_the_worker_lacks_is_a_dead_letter_naming_it),
                ("test_I3_moving_a_group_to_another_endpoint_applies_to_its_next_message",
                 test_I3_moving_a_group_to_another_endpoint_applies_to_its_next_message),
            ])
    finally:
        sink.stop()
