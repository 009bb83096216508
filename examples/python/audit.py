#!/usr/bin/env python3
"""Follow Mutua's audit feed from Python as a regulator, checking its hash chain as it arrives.

Driven by server reflection alone (no generated code, no .proto files), with the standard
library's hashlib for the chain: each record's chain_hash must be
SHA-256(previous chain_hash + canonical), starting from 32 zero bytes before record 1, and
records must follow one another without a gap.

The feed resumes: with --state FILE, the last record's sequence and chain hash are kept in the
file, and the next run starts after it, checking that the first record received chains from it.

Usage:
  python audit.py --server 127.0.0.1:50051 --token "$REGULATOR_TOKEN" --until 100 --state feed.state
or set MUTUA_SERVER and MUTUA_TOKEN. Without --until it follows without end (Ctrl-C stops).
"""

import argparse
import hashlib
import json
import os
import sys

import grpc
from google.protobuf import descriptor_pool, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

GENESIS = bytes(32)


def feed_call(channel, method_name):
    pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
    method = pool.FindServiceByName("mutua.v1.Audit").FindMethodByName(method_name)
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    path = f"/mutua.v1.Audit/{method_name}"
    make = channel.unary_stream if method.server_streaming else channel.unary_unary
    return request_class, make(
        path,
        request_serializer=request_class.SerializeToString,
        response_deserializer=response_class.FromString,
    )


def load_state(path):
    if path and os.path.exists(path):
        with open(path) as file:
            state = json.load(file)
        return state["sequence"], bytes.fromhex(state["chain_hash"])
    return None


def save_state(path, sequence, chain):
    if not path:
        return
    temporary = path + ".tmp"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump({"sequence": sequence, "chain_hash": chain.hex()}, file)
    os.replace(temporary, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default=os.environ.get("MUTUA_SERVER", "127.0.0.1:50051"))
    parser.add_argument("--token", default=os.environ.get("MUTUA_TOKEN"))
    parser.add_argument("--until", type=int, help="stop after this record")
    parser.add_argument("--state", help="file keeping where the feed stands, to resume from")
    args = parser.parse_args()
    if not args.token:
        sys.exit("a regulator's or the operator's token is needed: --token or MUTUA_TOKEN")
    metadata = [("authorization", f"Bearer {args.token}")]
    channel = grpc.insecure_channel(
        args.server, options=[("grpc.max_receive_message_length", 256 << 20)]
    )

    state = load_state(args.state)
    if state:
        last, head = state
        print(f"resuming after record {last}", file=sys.stderr)
    else:
        last, head = 0, GENESIS

    request_class, stream = feed_call(channel, "Stream")
    feed = stream(request_class(from_sequence=last + 1), metadata=metadata)
    kinds = {}
    try:
        for message in feed:
            for record in message.records:
                if record.sequence != last + 1:
                    sys.exit(f"record {record.sequence}: expected {last + 1}: a gap or a repeat")
                chain = hashlib.sha256(head + record.canonical).digest()
                if chain != record.chain_hash:
                    sys.exit(f"record {record.sequence}: the chain is broken")
                last, head = record.sequence, chain
                kinds[record.command_kind] = kinds.get(record.command_kind, 0) + 1
                events = ", ".join(event.kind for event in record.events) or "no events"
                outcome = "accepted" if record.accepted else f"refused ({record.reason_code})"
                print(
                    f"{record.sequence} {record.time} participant {record.participant_id} "
                    f"{record.command_kind} {outcome}: {events}"
                )
                if args.until and last >= args.until:
                    feed.cancel()
                    break
            save_state(args.state, last, head)
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.CANCELLED:
            raise
    save_state(args.state, last, head)
    print(
        f"checked records through {last}; chain {head.hex()}; "
        + ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items())),
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
