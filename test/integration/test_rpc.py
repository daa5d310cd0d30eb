# SPDX-License-Identifier: BSD-3-Clause
"""The JSON-RPC control socket: framing, the error format, refusals that change nothing."""
import json
import os
import socket
import subprocess

import pytest

from harness import VHOSTCTL, Rpc, RpcError, Vhostd, attach_net, wait_for


def error_of(reply):
    assert "error" in reply, f"expected an error, got {reply}"
    return reply["error"]


def test_malformed_json_gets_parse_error(vhostd):
    r = vhostd.rpc()
    r.send_raw(b'{"jsonrpc": "2.0", "method": "version", "id": 1, }\n')
    err = error_of(r.recv_json())
    assert err["code"] == -32700, err
    assert err["data"]["errno"] == "EBADMSG" and "malformed JSON" in err["data"]["reason"]
    r.close()
    # The daemon keeps serving other clients.
    assert vhostd.rpc().call("version")["version"]


def test_unknown_method(rpc):
    err = error_of(rpc.request("no_such_method"))
    assert err["code"] == -32601, err
    assert err["data"]["field"] == "method" and "no_such_method" in err["data"]["reason"]


@pytest.mark.parametrize("params,field,code", [
    ({"kind": "net", "socket": "/tmp/x.sock"}, "name", -32602),
    ({"name": "a b", "kind": "net", "socket": "/tmp/x.sock"}, "name", -32602),
    ({"name": "a", "kind": "tap", "socket": "/tmp/x.sock"}, "kind", -32602),
    ({"name": "a", "kind": "net", "socket": "/tmp/x.sock", "queues": 0}, "queues", -32602),
    ({"name": "a", "kind": "net", "socket": "/tmp/x.sock", "bogus": 1}, "bogus", -32602),
    ({"name": "a", "kind": "net", "socket": "/tmp/x.sock", "policy": {"iommu": "maybe"}},
     "policy.iommu", -32602),
    ({"name": "a", "kind": "net", "socket": "/tmp/x.sock", "policy": {"colour": "red"}},
     "policy.colour", -32602),
    ({"name": "a", "kind": "net"}, "socket", -32602),
    ({"name": "a", "kind": "net", "socket": "/nonexistent/dir/x.sock"}, "socket", -32001),
])
def test_bad_params_name_the_field(rpc, params, field, code):
    err = error_of(rpc.request("device_attach", params))
    assert err["code"] == code, err
    assert err["data"]["field"] == field, err
    assert err["data"]["reason"], err
    assert rpc.call("device_list") == []


def test_invalid_requests(rpc):
    rpc.send_raw(b'{"jsonrpc": "1.0", "method": "version", "id": 7}\n')
    err = error_of(rpc.recv_json())
    assert err["code"] == -32600 and err["data"]["field"] == "jsonrpc"
    rpc.send_raw(b"[]\n")
    assert error_of(rpc.recv_json())["code"] == -32600
    rpc.send_raw(b'{"jsonrpc": "2.0", "method": "version", "params": [1], "id": 8}\n')
    err = error_of(rpc.recv_json())
    assert err["code"] == -32602 and err["data"]["field"] == "params"


def test_batch_and_notifications(rpc):
    batch = [{"jsonrpc": "2.0", "method": "version", "id": 1},
             {"jsonrpc": "2.0", "method": "version"},  # a notification: no reply
             {"jsonrpc": "2.0", "method": "nope", "id": 3}]
    rpc.send_raw(json.dumps(batch).encode())
    replies = rpc.recv_json()
    assert isinstance(replies, list) and [r["id"] for r in replies] == [1, 3], replies
    assert replies[1]["error"]["code"] == -32601


def test_requests_split_across_writes_and_pipelined(rpc):
    rpc.send_raw(b'{"jsonrpc": "2.0", "meth')
    rpc.send_raw(b'od": "version", "id": 1}{"jsonrpc": "2.0", "method": "device_list", "id": 2}')
    assert rpc.recv_json()["id"] == 1
    assert rpc.recv_json() == {"jsonrpc": "2.0", "id": 2, "result": []}


def test_refused_attach_leaves_nothing_behind(rpc, tmp_path):
    sock = tmp_path / "dev.sock"
    attach_net(rpc, "a", tmp_path / "a.sock")
    # Same name again: refused, and the new socket path must not appear.
    with pytest.raises(RpcError) as e:
        attach_net(rpc, "a", sock)
    assert e.value.code == -32002 and e.value.data["errno"] == "EEXIST"
    assert e.value.data["field"] == "name"
    assert not sock.exists()
    # A socket already used by another device.
    with pytest.raises(RpcError) as e:
        attach_net(rpc, "b", tmp_path / "a.sock")
    assert e.value.data["field"] == "socket" and e.value.data["errno"] == "EEXIST"
    assert [d["name"] for d in rpc.call("device_list")] == ["a"]
    # A path in use by some other process.
    other = socket.socket(socket.AF_UNIX)
    other.bind(str(sock))
    other.listen()
    with pytest.raises(RpcError) as e:
        attach_net(rpc, "c", sock)
    assert e.value.data["field"] == "socket" and e.value.data["errno"] == "EADDRINUSE"
    other.close()


def test_validate_reports_every_problem_without_side_effects(rpc, tmp_path):
    res = rpc.call("device_validate", name="bad name", kind="net", socket=str(tmp_path / "v.sock"),
                   queues=500, policy={"iommu": "sometimes", "mtu": 5})
    fields = sorted(e["field"] for e in res["errors"])
    assert res["valid"] is False
    assert fields == ["name", "policy.iommu", "policy.mtu", "queues"], res
    ok = rpc.call("device_validate", name="good", kind="net", socket=str(tmp_path / "v.sock"))
    assert ok == {"valid": True, "errors": [], "more_errors": 0}
    assert rpc.call("device_list") == [] and not (tmp_path / "v.sock").exists()


def test_detach_removes_socket_and_unknown_names_are_refused(rpc, tmp_path):
    sock = tmp_path / "a.sock"
    attach_net(rpc, "a", sock)
    assert sock.exists()
    assert rpc.call("device_detach", name="a") is True
    assert not sock.exists()
    with pytest.raises(RpcError) as e:
        rpc.call("device_detach", name="a")
    assert e.value.code == -32001 and e.value.data["field"] == "name"
    with pytest.raises(RpcError) as e:
        rpc.call("xconnect_create", a="x", b="y")
    assert e.value.data["field"] == "a"


def test_second_daemon_on_the_same_socket_refuses_to_start(vhostd, rpc, tmp_path):
    second = Vhostd(tmp_path, name="second")
    second.rpc_path = vhostd.rpc_path
    second.start(wait=False)
    rc = second.proc.wait(timeout=30)
    second.logf.close()
    assert rc != 0
    assert "another vhostd holds" in second.log(), second.log()
    # The first one still serves, on the same socket.
    assert rpc.call("version")["version"]
    assert Rpc(vhostd.rpc_path).call("device_list") == []


def test_vhostctl_prints_result_or_error(vhostd, tmp_path):
    base = [str(VHOSTCTL), "-s", str(vhostd.rpc_path)]
    ok = subprocess.run(base + ["device_attach", "name=a", "kind=net",
                                f"socket={tmp_path}/a.sock", "queues=2",
                                "policy.iommu=platform"],
                        capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0, ok.stderr
    dev = json.loads(ok.stdout)
    assert dev["nb_queues"] == 2 and dev["policy"]["iommu"] == "platform"
    bad = subprocess.run(base + ["device_get", "name=zz"], capture_output=True, text=True,
                         timeout=30)
    assert bad.returncode == 1 and bad.stdout == ""
    assert json.loads(bad.stderr)["data"]["field"] == "name"
    raw = subprocess.run(base + ["device_get", '{"name": "a"}'], capture_output=True, text=True,
                         timeout=30)
    assert raw.returncode == 0 and json.loads(raw.stdout)["name"] == "a"


def test_config_save_and_replay(tmp_path):
    cfg = tmp_path / "vhostd.json"
    d = Vhostd(tmp_path, name="first", config=cfg).start()
    try:
        r = d.rpc()
        attach_net(r, "a", tmp_path / "a.sock", queues=2, policy={"iommu": "platform"})
        attach_net(r, "b", tmp_path / "b.sock", mode="server")
        r.call("xconnect_create", a="a", b="b")
        assert r.call("config_save") == {"path": str(cfg)}
        saved = json.loads(cfg.read_text())
        assert [c["method"] for c in saved] == ["device_attach", "device_attach",
                                                 "xconnect_create"]
        assert not any(p.name.startswith("vhostd.json.tmp") for p in tmp_path.iterdir())
    finally:
        assert d.stop() == 0
    d2 = Vhostd(tmp_path, name="second", config=cfg).start()
    try:
        r = d2.rpc()
        a = r.call("device_get", name="a")
        assert a["nb_queues"] == 2 and a["policy"]["iommu"] == "platform"
        assert a["xconnect"] == "b"
    finally:
        assert d2.stop() == 0


def test_bad_config_refuses_to_start_with_the_entry_named(tmp_path):
    cfg = tmp_path / "bad.json"
    cfg.write_text(json.dumps([
        {"method": "device_attach", "params": {"name": "a", "kind": "net",
                                               "socket": str(tmp_path / "a.sock")}},
        {"method": "device_attach", "params": {"name": "b", "kind": "net",
                                               "socket": str(tmp_path / "b.sock"),
                                               "policy": {"iommu": "bogus"}}}]))
    d = Vhostd(tmp_path, config=cfg).start(wait=False)
    assert d.proc.wait(timeout=30) != 0
    d.logf.close()
    assert "entry 1 (device_attach) refused" in d.log() and "config[1].params.policy.iommu" in d.log()
    assert not (tmp_path / "a.sock").exists(), "a refused config must not leave devices behind"
