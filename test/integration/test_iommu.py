# SPDX-License-Identifier: BSD-3-Clause
"""ACCESS_PLATFORM done right (design section 3), driven by the project's frontend driver, which
behaves like QEMU 7.2: with --iommu platform (no vIOMMU) it needs bit 33 offered but strips it
from SET_FEATURES; with --iommu viommu it sends bit 33, IOVAs with a non-identity IOVA->GPA map,
and answers IOTLB misses on the backend channel.

Each row: {kind} x {policy.iommu} x {frontend: no bit 33 / bit 33 without translation / bit 33
with translation} -> attach result, session result, translating, byte-exact payloads."""
import time

import pytest

from harness import Frontend, RpcError, attach_net, queue_stats, wait_for

POLICIES = ["off", "platform", "translate", "required"]
FRONTENDS = {"no-bit33": "off", "bit33-no-translation": "platform", "bit33-translation": "viommu"}

# (policy, frontend) -> (session, translating); "fe-refuses": the frontend refuses the backend as
# QEMU would (bit 33 not offered), "refused": vhostd refuses the session.
NET_EXPECT = {
    ("off", "no-bit33"): ("running", False),
    ("off", "bit33-no-translation"): ("fe-refuses", False),
    ("off", "bit33-translation"): ("fe-refuses", False),
    ("platform", "no-bit33"): ("running", False),
    ("platform", "bit33-no-translation"): ("running", False),
    ("platform", "bit33-translation"): ("running", True),
    ("translate", "no-bit33"): ("running", False),
    ("translate", "bit33-no-translation"): ("running", False),
    ("translate", "bit33-translation"): ("running", True),
    ("required", "no-bit33"): ("refused", False),
    ("required", "bit33-no-translation"): ("refused", False),
    ("required", "bit33-translation"): ("running", True),
}

COUNT = 20000


def pair(rpc, tmp_path, policy, **kw):
    a, b = tmp_path / "a.sock", tmp_path / "b.sock"
    for name, sock in (("a", a), ("b", b)):
        dev = attach_net(rpc, name, sock, policy={"iommu": policy}, **kw)
        assert dev["iommu"]["offered"] == (policy != "off"), dev
    rpc.call("xconnect_create", a="a", b="b")
    return a, b


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("frontend", list(FRONTENDS))
def test_net_matrix(vhostd, rpc, tmp_path, policy, frontend):
    session, translating = NET_EXPECT[(policy, frontend)]
    row = f"net x iommu={policy} x frontend={frontend}"
    a, b = pair(rpc, tmp_path, policy)
    fe = Frontend("--socket", a, "--socket2", b, "--iommu", FRONTENDS[frontend], "--tx", "--rx",
                  "--count", COUNT, "--rate-pps", 200000, "--iotlb-prefill",
                  "--pkt-sizes", "64,1500,333", "--ring-size", 1024, "--timeout-s", 8,
                  "--drain-ms", 500).run()
    s = fe.summary
    if session == "fe-refuses":
        assert fe.rc == 3, f"{row}: expected the frontend to refuse (exit 3), got {fe.rc} {fe.error}"
        assert "iommu_platform=true is not supported" in fe.error["reason"], f"{row}: {fe.error}"
        dev = rpc.call("device_get", name="a")
        assert dev["sessions"] == 0 and dev["state"] == "waiting", f"{row}: {dev}"
        return
    dev = wait_for(lambda: (d := rpc.call("device_get", name="a"))["sessions"] +
                   d["refused_sessions"] > 0 and d, what=f"{row}: a session outcome")
    if session == "refused":
        assert dev["refused_sessions"] == 1 and dev["sessions"] == 0, f"{row}: {dev}"
        assert "required" in dev["last_refusal"], f"{row}: reason was {dev['last_refusal']!r}"
        assert s.get("rx_ok", 0) == 0, f"{row}: a refused session moved packets: {s}"
        assert queue_stats(rpc, "a")[0]["rx_packets"] == 0
        return
    assert fe.rc == 0, f"{row}: frontend exit {fe.rc}: {fe.error}\n{fe.stderr[-2000:]}"
    assert dev["sessions"] == 1 and dev["refused_sessions"] == 0, f"{row}: {dev}"
    acked_bit33 = int(s["features_acked"], 16) >> 33 & 1
    assert acked_bit33 == translating, f"{row}: SET_FEATURES bit 33 = {acked_bit33}"
    # Every frame arrives byte-exact, or is a drop vhostd counted: with translation, the few
    # frames that hit a miss before the frontend's prefill arrived; without, a receive ring
    # that was full while the frontend (sharing CPU 0 with the test) was not scheduled.
    sa, sb = queue_stats(rpc, "a")[0], queue_stats(rpc, "b")[0]
    dropped = sb["tx_drops"] + sa["rx_drops"]
    assert s["rx_bad"] == 0 and s["rx_foreign"] == 0, f"{row}: bad={s['rx_bad']}"
    assert s["rx_ok"] + dropped == COUNT, \
        f"{row}: expected {COUNT} frames delivered or counted as drops, got ok={s['rx_ok']} " \
        f"drops={dropped}"
    assert dropped <= COUNT // 100, f"{row}: {dropped} drops"
    # translating is what vhostd reports while the session runs; after it ends the device waits.
    got = rpc.call("device_get", name="a")
    assert got["features"] == "0x0" or (int(got["features"], 16) >> 33 & 1) == translating, got
    st = queue_stats(rpc, "a")[0]
    if translating:
        assert st["iotlb_hits"] > 0, f"{row}: no IOTLB hits counted: {st}"
    else:
        assert st["iotlb_hits"] == 0 and st["iotlb_misses"] == 0, f"{row}: {st}"


def test_translating_is_reported_while_running(vhostd, rpc, tmp_path):
    a, b = pair(rpc, tmp_path, "translate")
    fe = Frontend("--socket", a, "--socket2", b, "--iommu", "viommu", "--duration-s", 3,
                  "--tx", "--rx", "--rate-pps", 100000).start()
    try:
        dev = wait_for(lambda: (d := rpc.call("device_get", name="a"))["state"] == "running"
                       and d, what="a running")
        assert dev["iommu"] == {"mode": "translate", "offered": True, "translating": True,
                                "iotlb_messages": dev["iommu"]["iotlb_messages"]}, dev
        assert dev["iommu"]["iotlb_messages"]["updates"] > 0
    finally:
        fe.wait()
    assert fe.rc == 0 and fe.summary["rx_bad"] == 0, fe.summary


@pytest.mark.parametrize("policy,ok", [("off", True), ("platform", True), ("translate", False),
                                       ("required", False)])
def test_eth_attach_matrix(rpc, policy, ok):
    """An ethdev has no guest memory: platform is accepted (never refused for translation),
    translate/required are refused naming policy.iommu."""
    params = dict(name=f"e{policy}", kind="eth", devargs=f"net_null_{policy}0",
                  policy={"iommu": policy})
    if ok:
        dev = rpc.call("device_attach", **params)
        assert dev["state"] == "running" and dev["iommu"]["mode"] == policy
        assert rpc.call("device_detach", name=params["name"]) is True
    else:
        with pytest.raises(RpcError) as e:
            rpc.call("device_attach", **params)
        assert e.value.code == -32006 and e.value.data["field"] == "policy.iommu", e.value.error
        assert "cannot" in e.value.data["reason"]
        assert rpc.call("device_list") == []


def test_invalidation_in_the_middle_of_traffic(vhostd, rpc, tmp_path):
    a, b = pair(rpc, tmp_path, "translate")
    fe = Frontend("--socket", a, "--socket2", b, "--iommu", "viommu", "--tx", "--rx",
                  "--duration-s", 2, "--invalidate-after-ms", 700, "--rate-pps", 500000).run()
    s = fe.summary
    assert fe.rc == 0, fe.error
    assert s["iotlb_invalidations_sent"] > 0
    assert s["rx_bad"] == 0, f"stale translations after the invalidation: {s['rx_bad']} bad frames"
    assert s["rx_ok"] > 0.9 * s["tx_packets"], s
    # After the invalidation the backend had to ask again, and traffic went on.
    assert s["iotlb_misses_received"] >= 2, s
    dev = rpc.call("device_get", name="a")
    assert dev["iommu"]["iotlb_messages"]["invalidations"] > 0, dev


def test_write_to_readonly_mapping_is_a_counted_drop(vhostd, rpc, tmp_path):
    a, b = pair(rpc, tmp_path, "translate")
    fe = Frontend("--socket", a, "--socket2", b, "--iommu", "viommu", "--tx", "--rx",
                  "--count", 2000, "--rate-pps", 100000, "--rx-map-readonly",
                  "--timeout-s", 6, "--drain-ms", 300).run()
    s = fe.summary
    assert s["rx_ok"] == 0 and s["rx_bad"] == 0, s
    assert s["iotlb_misses_denied"] > 0, s
    sa, sb = queue_stats(rpc, "a")[0], queue_stats(rpc, "b")[0]
    assert sa["rx_packets"] > 0
    assert sb["tx_packets"] == 0 and sb["tx_drops"] > 0, (sa, sb)
    assert sb["tx_drops"] + sa["rx_drops"] == sa["rx_packets"], (sa, sb)
    assert vhostd.alive()


def rate_samples(rpc, name, seconds, step=0.05):
    """Packets vhostd delivered to device name, sampled every step seconds."""
    out = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        out.append((time.monotonic(), queue_stats(rpc, name)[0]["tx_packets"]))
        time.sleep(step)
    return out


def two_pairs(rpc, tmp_path):
    """a/b translating (the one that will wait), c/d plain (the one that must not)."""
    a, b = pair(rpc, tmp_path, "translate")
    c, d = tmp_path / "c.sock", tmp_path / "d.sock"
    attach_net(rpc, "c", c)
    attach_net(rpc, "d", d)
    rpc.call("xconnect_create", a="c", b="d")
    return a, b, c, d


def test_late_miss_does_not_stall_another_device(vhostd, rpc, tmp_path):
    """Device pair a/b waits 200 ms for every IOTLB answer; pair c/d keeps its rate. Both
    drivers share CPU 0 and sleep when idle, so that neither takes CPU from the other: a drop in
    c->d is vhostd's, not the generator's (yielding drivers split the core between them)."""
    a, b, c, d = two_pairs(rpc, tmp_path)
    rate = 300000
    steady = Frontend("--socket", c, "--socket2", d, "--tx", "--rx", "--rate-pps", rate,
                      "--idle-sleep-us", 50, "--duration-s", 6, "--timeout-s", 20).start()
    slow = None
    try:
        wait_for(lambda: queue_stats(rpc, "d")[0]["tx_packets"] > rate / 2, what="c->d traffic")
        base = rate_samples(rpc, "d", 1.0)
        slow = Frontend("--socket", a, "--socket2", b, "--iommu", "viommu", "--tx", "--rx",
                        "--miss-delay-ms", 200, "--iotlb-page-size", 4096, "--duration-s", 2,
                        "--rate-pps", 200000, "--idle-sleep-us", 50, "--timeout-s", 20).start()
        during = rate_samples(rpc, "d", 2.0)
        slow.wait()
    finally:
        steady.wait(timeout=30)
        if slow:
            slow.kill()

    def pps(samples):
        return (samples[-1][1] - samples[0][1]) / (samples[-1][0] - samples[0][0])

    gaps = [t2 - t1 for (t1, n1), (t2, n2) in zip(during, during[1:]) if n2 == n1]
    assert slow.summary["iotlb_misses_answered"] > 0 and \
        slow.summary["iotlb_answer_avg_ms"] >= 150, slow.summary
    assert slow.summary["rx_bad"] == 0
    assert pps(during) >= 0.9 * pps(base), \
        f"c->d fell from {pps(base):.0f} to {pps(during):.0f} pps while a/b waited for misses"
    assert not gaps, f"c->d stopped for {gaps} s while a/b waited for misses"
    assert steady.summary["rx_bad"] == 0
    st = queue_stats(rpc, "a")[0]
    assert st["iotlb_misses"] > 0 and st["iotlb_wait_cycles"] > 0, st


def test_never_answered_miss_costs_only_that_device(vhostd, rpc, tmp_path):
    a, b, c, d = two_pairs(rpc, tmp_path)
    # Both drivers sleep when idle, so that the stuck one takes no CPU from the other.
    stuck = Frontend("--socket", a, "--socket2", b, "--iommu", "viommu", "--tx", "--rx",
                     "--miss-never", "--idle-sleep-us", 50, "--duration-s", 2,
                     "--timeout-s", 4).start()
    other = Frontend("--socket", c, "--socket2", d, "--tx", "--rx", "--count", 50000,
                     "--rate-pps", 100000, "--idle-sleep-us", 50, "--timeout-s", 10).run()
    stuck.wait()
    sc, sd = queue_stats(rpc, "c")[0], queue_stats(rpc, "d")[0]
    assert other.rc == 0 and other.summary["rx_bad"] == 0, other.summary
    # Every packet is delivered or counted: dropped towards d, or on c while d was not yet
    # forwarding (the frontend starts sending as soon as it has set d up; vhostd publishes
    # d's session to its worker a moment later).
    assert sc["rx_packets"] == 50000, sc
    assert other.summary["rx_ok"] + sd["tx_drops"] + sc["rx_drops"] == 50000, \
        (other.summary, sc, sd)
    assert other.summary["rx_ok"] >= 49000, (other.summary, sc, sd)
    assert stuck.summary["iotlb_misses_ignored"] > 0, stuck.summary
    assert stuck.summary.get("rx_ok", 0) == 0
    assert vhostd.alive()
    wait_for(lambda: rpc.call("device_get", name="a")["state"] == "waiting",
             what="a back in waiting after the stuck frontend left")


BLK_EXPECT = {
    ("off", "no-bit33"): "running",
    ("off", "bit33-no-translation"): "fe-refuses",
    ("off", "bit33-translation"): "fe-refuses",
    ("platform", "no-bit33"): "running",
    ("platform", "bit33-no-translation"): "running",  # a confidential guest: served
    ("platform", "bit33-translation"): "refused",  # a vIOMMU: blk cannot translate
    ("translate", "no-bit33"): "attach-refused",
    ("translate", "bit33-no-translation"): "attach-refused",
    ("translate", "bit33-translation"): "attach-refused",
    ("required", "no-bit33"): "attach-refused",
    ("required", "bit33-no-translation"): "attach-refused",
    ("required", "bit33-translation"): "attach-refused",
}


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("frontend", list(FRONTENDS))
def test_blk_matrix(vhostd, rpc, tmp_path, policy, frontend):
    expect = BLK_EXPECT[(policy, frontend)]
    row = f"blk x iommu={policy} x frontend={frontend}"
    img = tmp_path / "disk.img"
    with open(img, "wb") as f:
        f.truncate(16 << 20)
    sock = tmp_path / "d.sock"
    params = dict(name="d", kind="blk", socket=str(sock), backing=str(img),
                  policy={"iommu": policy})
    if expect == "attach-refused":
        with pytest.raises(RpcError) as e:
            rpc.call("device_attach", **params)
        assert e.value.code == -32006 and e.value.data["field"] == "policy.iommu", \
            f"{row}: {e.value.error}"
        assert "cannot" in e.value.data["reason"] and not sock.exists(), row
        # ...while 'platform' is never refused for the same device.
        assert rpc.call("device_attach", **{**params, "policy": {"iommu": "platform"}})
        return
    dev = rpc.call("device_attach", **params)
    assert dev["iommu"]["offered"] == (policy != "off"), f"{row}: {dev['iommu']}"
    fe = Frontend("--kind", "blk", "--socket", sock, "--iommu", FRONTENDS[frontend],
                  "--blk-ops", "write:off=4096,len=8192,seed=11;read:off=4096,len=8192,seed=11",
                  "--timeout-s", 8, "--op-timeout-ms", 2000).run()
    got = rpc.call("device_get", name="d")
    if expect == "fe-refuses":
        assert fe.rc == 3 and "iommu_platform=true is not supported" in fe.error["reason"], \
            f"{row}: {fe.rc} {fe.error}"
        assert got["sessions"] == 0, f"{row}: {got}"
    elif expect == "refused":
        assert fe.rc != 0, f"{row}: the frontend should have lost the device: {fe.summary}"
        got = wait_for(lambda: (g := rpc.call("device_get", name="d"))["refused_sessions"] and g,
                       what=f"{row}: the refusal recorded")
        assert "cannot translate" in got["last_refusal"], f"{row}: {got['last_refusal']}"
        assert got["sessions"] == 0
    else:
        res = [e for e in fe.events if e.get("event") == "blk_op"]
        assert fe.rc == 0 and [o["status"] for o in res] == [0, 0], f"{row}: {res} {fe.error}"
        assert res[1]["verified"], f"{row}: read back differs"
        assert int(fe.summary["features_acked"], 16) >> 33 & 1 == 0, \
            f"{row}: bit 33 reached SET_FEATURES without a vIOMMU"
        assert got["sessions"] == 1 and got["refused_sessions"] == 0, f"{row}: {got}"
