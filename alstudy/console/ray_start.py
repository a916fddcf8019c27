"""Start (or stop) a Ray node for `alstudy grid --ray`: bound to 127.0.0.1, or token-authenticated.

    alstudy ray-start --head                                          # one machine, 127.0.0.1 only
    alstudy ray-start --head --node-ip-address 10.0.0.5               # head of a cluster across machines
    alstudy ray-start --address 10.0.0.5:6379 --node-ip-address 10.0.0.6   # another machine joins
    alstudy ray-start --stop                                          # stop this machine's node (--temp-dir)

Across machines (--node-ip-address) it refuses to start without Ray's token authentication:
`export RAY_AUTH_MODE=token`, the token in ~/.ray/auth_token (mode 600) on every node and driver.
See alstudy/scale/ray_node.py and docs/user-guide/ray-cluster.md.
"""

from __future__ import annotations

import argparse

from alstudy.runner import run_stage
from alstudy.scale import ray_node


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    role = parser.add_mutually_exclusive_group(required=True)
    role.add_argument("--head", action="store_true", help="start a new cluster's head node here")
    role.add_argument("--address", metavar="HEAD:PORT", help="join the cluster whose head is at HEAD:PORT")
    role.add_argument("--stop", action="store_true", help="stop the Ray processes using --temp-dir, no others")
    parser.add_argument("--port", type=int, default=6379, help="the head's port (default 6379)")
    parser.add_argument(
        "--node-ip-address", metavar="IP", help="this machine's private IP: a cluster across machines (token auth)"
    )
    parser.add_argument("--num-cpus", type=int, help="CPUs this node offers (default: all)")
    parser.add_argument("--temp-dir", help="Ray's folder for logs and sockets (default /tmp/ray; keep it short)")
    parser.add_argument("--client-server-port", type=int, help="Ray Client's port (default Ray's 10001)")
    args = parser.parse_args(argv)
    if args.stop:
        count = ray_node.stop(args.temp_dir)
        print(f"stopped {count} Ray processes using {args.temp_dir or ray_node.default_temp_dir()}")
        return
    node = ray_node.Node(
        head=args.head,
        address=args.address,
        port=args.port,
        node_ip_address=args.node_ip_address,
        num_cpus=args.num_cpus,
        temp_dir=args.temp_dir,
        client_server_port=args.client_server_port,
    )
    address = ray_node.start(node)
    if node.across_machines:
        print(f"Ray node up, token authentication on; run the grid with: alstudy grid --ray {address}")
    else:
        print(f"Ray node up on 127.0.0.1 only; run the grid here with: alstudy grid --ray {address}")


if __name__ == "__main__":
    run_stage(main)
