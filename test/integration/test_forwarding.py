# SPDX-License-Identifier: BSD-3-Clause
"""xconnect forwarding through vhostd with dpdk-testpmd's net_virtio_user ports as frontends."""
import time

from harness import Testpmd, attach_net, queue_stats, wait_for


def test_forwards_both_ways_and_counters_agree(vhostd, rpc, tmp_path):
    a, b = tmp_path / "a.sock", tmp_path / "b.sock"
    attach_net(rpc, "a", a)
    attach_net(rpc, "b", b)
    assert rpc.call("xconnect_create", a="a", b="b") is True

    # Interactive, so that testpmd can stop forwarding and keep its ports open while vhostd
    # takes what it had queued (on SIGINT it closes them at once: what vhostd had not yet taken
    # would leave with the frontend, and a busy machine makes that a race).
    gen = Testpmd(tmp_path, [a, b], interactive=True).start()
    try:
        gen.wait_forwarding(min_packets=100000)
        for name in ("a", "b"):
            dev = rpc.call("device_get", name=name)
            assert dev["state"] == "running", dev
            assert dev["xconnect"] == ("b" if name == "a" else "a")
        ports = gen.stop_forwarding()

        # What testpmd sent into port N is exactly what vhostd received from that device.
        def drained():
            sa, sb = queue_stats(rpc, "a")[0], queue_stats(rpc, "b")[0]
            return (sa["rx_packets"] == ports[0][1] and sb["rx_packets"] == ports[1][1]) and \
                (sa, sb)

        wait_for(drained, timeout=10, what="vhostd rx counters to equal testpmd's tx")

        # Every packet vhostd received from one side was sent to the other or counted as a
        # drop, once the last bursts it held for a full ring (1 ms) are delivered or dropped.
        def settled():
            sa, sb = queue_stats(rpc, "a")[0], queue_stats(rpc, "b")[0]
            return (sa["rx_packets"] == sb["tx_packets"] + sb["tx_drops"] + sa["rx_drops"] and
                    sb["rx_packets"] == sa["tx_packets"] + sa["tx_drops"] + sb["rx_drops"]) and \
                (sa, sb)

        sa, sb = wait_for(settled, timeout=5, what="every received packet sent or dropped")
    finally:
        gen.stop()
    # Both directions carried traffic.
    assert ports[0][0] > 100000 and ports[1][0] > 100000, ports
    # What testpmd received on a port is what vhostd delivered to that device, less at most
    # one ring of packets vhostd had placed that testpmd never read before it stopped.
    for port, st in ((0, sa), (1, sb)):
        rx = ports[port][0]
        assert rx <= st["tx_packets"] <= rx + 1024, (port, rx, st)
    # Bytes agree with packets of 64 bytes (testpmd's default txonly/io frame size).
    assert sa["rx_bytes"] == 64 * sa["rx_packets"], sa


def test_detaching_one_xconnect_leaves_the_other_forwarding(vhostd, rpc, tmp_path):
    socks = [tmp_path / f"{n}.sock" for n in "abcd"]
    for n, s in zip("abcd", socks):
        attach_net(rpc, n, s)
    rpc.call("xconnect_create", a="a", b="b")
    rpc.call("xconnect_create", a="c", b="d")

    gen = Testpmd(tmp_path, socks).start()
    try:
        gen.wait_forwarding(min_packets=50000)
        assert rpc.call("xconnect_delete", a="a", b="b") is True
        # From now on a's and b's packets are dropped (counted), c<->d keep flowing.
        before = {n: queue_stats(rpc, n)[0] for n in "abcd"}
        time.sleep(2)
        after = {n: queue_stats(rpc, n)[0] for n in "abcd"}
        for n in "cd":
            moved = after[n]["tx_packets"] - before[n]["tx_packets"]
            assert moved > 50000, f"{n} forwarded only {moved} packets after the delete"
        for n in "ab":
            assert after[n]["tx_packets"] == before[n]["tx_packets"], (n, before[n], after[n])
        assert rpc.call("device_get", name="a")["xconnect"] is None
        assert rpc.call("device_get", name="c")["xconnect"] == "d"
    finally:
        gen.stop()


def test_frontend_killed_midtraffic_then_a_new_one_forwards(vhostd, rpc, tmp_path):
    a, b = tmp_path / "a.sock", tmp_path / "b.sock"
    attach_net(rpc, "a", a)
    attach_net(rpc, "b", b)
    rpc.call("xconnect_create", a="a", b="b")

    gen = Testpmd(tmp_path, [a, b], name="pmd1").start()
    gen.wait_forwarding(min_packets=50000)
    gen.kill()  # SIGKILL mid-traffic: no goodbye on the vhost-user sockets

    wait_for(lambda: all(rpc.call("device_get", name=n)["state"] == "waiting" and
                         not rpc.call("device_get", name=n)["connected"] for n in "ab"),
             timeout=10, what="both devices back in 'waiting'")
    assert vhostd.alive()

    rpc.call("stats_reset")
    gen2 = Testpmd(tmp_path, [a, b], name="pmd2").start()
    try:
        gen2.wait_forwarding(min_packets=50000)
        assert all(rpc.call("device_get", name=n)["sessions"] == 2 for n in "ab")
    finally:
        gen2.stop()
    assert queue_stats(rpc, "a")[0]["tx_packets"] > 50000


def test_client_mode_connects_and_reconnects(vhostd, rpc, tmp_path):
    """mode=client: vhostd connects to a listening frontend (virtio-user server=1), and
    reconnects after the frontend restarts."""
    a, b = tmp_path / "a.sock", tmp_path / "b.sock"
    gen = Testpmd(tmp_path, [a, b], name="srv1", server=True).start()
    try:
        # virtio-user in server mode waits for a backend on each port before it creates the next
        for name, sock in (("a", a), ("b", b)):
            wait_for(sock.exists, what=f"testpmd's listening socket {sock}")
            attach_net(rpc, name, sock, mode="client")
        rpc.call("xconnect_create", a="a", b="b")
        gen.wait_forwarding(min_packets=50000)
    finally:
        gen.kill()
    wait_for(lambda: rpc.call("device_get", name="a")["state"] == "waiting", timeout=10,
             what="a back in waiting")
    a.unlink()  # a killed frontend leaves its socket files behind; its restart replaces them
    b.unlink()
    gen2 = Testpmd(tmp_path, [a, b], name="srv2", server=True).start()
    try:
        # librte_vhost retries the connection every second.
        gen2.wait_forwarding(min_packets=50000, timeout=40)
    finally:
        gen2.stop()
    assert rpc.call("device_get", name="a")["sessions"] == 2


def test_multiqueue_xconnect_uses_every_queue(vhostd, rpc, tmp_path):
    """queues=2 on both devices, testpmd with two queue pairs per port (RSS spreads its flows
    over them): every queue of both devices carries traffic, and counters still balance."""
    a, b = tmp_path / "a.sock", tmp_path / "b.sock"
    attach_net(rpc, "a", a, queues=2)
    attach_net(rpc, "b", b, queues=2)
    rpc.call("xconnect_create", a="a", b="b")
    gen = Testpmd(tmp_path, [a, b], queues=2, extra=["--txpkts=64", "--txonly-multi-flow"]).start()
    try:
        gen.wait_forwarding(min_packets=100000)
        dev = rpc.call("device_get", name="a")
        assert [q["rx_enabled"] and q["tx_enabled"] for q in dev["queues"]] == [True, True], dev
    finally:
        ports = gen.stop()

    # Once vhostd has seen testpmd go (its sessions end, held bursts are counted as drops),
    # what a received is what b sent or dropped, or a dropped.
    def balanced():
        qa, qb = queue_stats(rpc, "a"), queue_stats(rpc, "b")
        return sum(q["rx_packets"] for q in qa) == \
            sum(q["tx_packets"] + q["tx_drops"] for q in qb) + \
            sum(q["rx_drops"] for q in qa) and (qa, qb)

    qa, qb = wait_for(balanced, timeout=5, what="a's received = b's sent + dropped")
    for name, qs in (("a", qa), ("b", qb)):
        for q in qs:
            assert q["rx_packets"] > 1000 and q["tx_packets"] > 1000, (name, qs)
    assert ports[0][1] > 100000
