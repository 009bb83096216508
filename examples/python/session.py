#!/usr/bin/env python3
"""A whole Mutua market session from Python, driven by server reflection alone.

No generated code and no .proto files: every message type and service is fetched from the running
server through gRPC server reflection, so this client keeps working as the contract grows.

The session, as the operator, an organization and two contributors (alice and bob):
  health check; register the three participants; deposit cash for both contributors; list a
  community share and open trading; the organization runs a primary offering (open, alice
  subscribes, close); alice offers part of her units; bob's crossing buy matches; print the trade,
  the book, balances and holdings.

Usage:
  python session.py --server 127.0.0.1:50051 --token "$(cat data/operator.token)"
or set MUTUA_SERVER and MUTUA_TOKEN. Every run uses fresh participants, a fresh symbol and fresh
request ids, so it can be repeated against the same exchange.
"""

import argparse
import os
import queue
import secrets
import sys
import threading

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)


class ReflectedClient:
    """Calls any method the server exposes, by its full name, with requests given as dicts in
    proto JSON form (field names and enum value names exactly as in the .proto files)."""

    def __init__(self, channel):
        self._channel = channel
        # The pool asks the server's reflection service for a file the first time a symbol in it
        # is looked up, and for that file's imports.
        self._pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
        self._methods = {}

    def _method(self, full_method):
        if full_method not in self._methods:
            service_name, method_name = full_method.rsplit("/", 1)
            method = self._pool.FindServiceByName(service_name).FindMethodByName(method_name)
            if method is None:
                raise LookupError(f"{service_name} has no method {method_name}")
            request_class = message_factory.GetMessageClass(method.input_type)
            response_class = message_factory.GetMessageClass(method.output_type)
            path = f"/{service_name}/{method_name}"
            if method.server_streaming:
                callable_ = self._channel.unary_stream(
                    path,
                    request_serializer=request_class.SerializeToString,
                    response_deserializer=response_class.FromString,
                )
            else:
                callable_ = self._channel.unary_unary(
                    path,
                    request_serializer=request_class.SerializeToString,
                    response_deserializer=response_class.FromString,
                )
            self._methods[full_method] = (request_class, callable_)
        return self._methods[full_method]

    def call(self, full_method, request=None, token=None, timeout=10.0):
        """A unary call; raises grpc.RpcError on a refusal."""
        request_class, callable_ = self._method(full_method)
        message = json_format.ParseDict(request or {}, request_class())
        return callable_(message, metadata=_auth(token), timeout=timeout)

    def stream(self, full_method, request=None, token=None):
        """A server-streaming call; the returned call is an iterator and can be cancelled."""
        request_class, callable_ = self._method(full_method)
        message = json_format.ParseDict(request or {}, request_class())
        return callable_(message, metadata=_auth(token))


def _auth(token):
    return (("authorization", f"Bearer {token}"),) if token else ()


def show(title, message):
    print(f"--- {title}")
    # Proto3 leaves zero values off the wire, so ids and quantities of 0 print as absent.
    print(json_format.MessageToJson(message, indent=2))


def enum_name(message, field):
    """The name of an enum field's value, e.g. "ORDER_STATUS_FILLED"."""
    enum_type = message.DESCRIPTOR.fields_by_name[field].enum_type
    return enum_type.values_by_number[getattr(message, field)].name


def collect_trades(call, into):
    """Puts each streamed trade on `into` until the stream ends or is cancelled."""
    try:
        for trade in call:
            into.put(trade)
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.CANCELLED:
            into.put(error)


def session(client, operator):
    run = secrets.token_hex(3).upper()  # keeps symbols and request ids fresh across runs
    symbol = f"PY-{run}"

    health = client.call("grpc.health.v1.Health/Check", {"service": "mutua.v1.Exchange"})
    show("health of mutua.v1.Exchange", health)

    def register(role, name):
        reply = client.call(
            "mutua.v1.Registry/RegisterParticipant",
            {"request_id": f"{run}-register-{name}", "role": role, "name": name},
            token=operator,
        )
        print(f"registered {name} ({role}) as participant {reply.participant_id}")
        return reply.participant_id, reply.token

    organization_id, organization = register("ROLE_ORGANIZATION", f"Green Valley Co-op {run}")
    alice_id, alice = register("ROLE_CONTRIBUTOR", f"alice-{run}")
    bob_id, bob = register("ROLE_CONTRIBUTOR", f"bob-{run}")

    # Only an accredited organization may list, offer, host time credits or redeem.
    client.call(
        "mutua.v1.Registry/SetAccreditation",
        {"request_id": f"{run}-accredit", "organization_id": organization_id, "accredited": True},
        token=operator,
    )
    print(f"accredited participant {organization_id}")

    for who, participant in (("alice", alice_id), ("bob", bob_id)):
        reply = client.call(
            "mutua.v1.Accounts/Deposit",
            {"request_id": f"{run}-deposit-{who}", "participant_id": participant, "amount": "1000.00"},
            token=operator,
        )
        print(f"deposited 1000.00 for {who}: balance {reply.balance}")

    listed = client.call(
        "mutua.v1.Registry/ListInstrument",
        {
            "request_id": f"{run}-list",
            "symbol": symbol,
            "kind": "INSTRUMENT_KIND_COMMUNITY_SHARE",
            "issuer_id": organization_id,
            "tick_size": "0.01",
            "lot_size": "1",
            "par": "10.00",
            "return_cap": "0.05",
            # Two contributors hold the whole issue here, so the default 10 % cap on one
            # contributor's share of the units outstanding would refuse every trade.
            "holding_cap": "1",
        },
        token=operator,
    )
    print(f"listed {symbol} as instrument {listed.instrument_id}")
    client.call(
        "mutua.v1.Registry/SetTradingStatus",
        {"request_id": f"{run}-open", "instrument": {"symbol": symbol}, "open": True},
        token=operator,
    )
    print(f"opened trading in {symbol}")

    offering = client.call(
        "mutua.v1.Registry/OpenOffering",
        {"request_id": f"{run}-offer", "instrument": {"symbol": symbol}, "quantity": "100", "minimum_quantity": "10"},
        token=organization,
    )
    print(f"offering {offering.offering_id} open: 100 units at par, minimum 10")
    subscribed = client.call(
        "mutua.v1.Registry/Subscribe",
        {"request_id": f"{run}-subscribe", "offering_id": offering.offering_id, "quantity": "20"},
        token=alice,
    )
    print(f"alice subscribed 20 units, {subscribed.cash_reserved} reserved")
    show(
        "offering closed",
        client.call(
            "mutua.v1.Registry/CloseOffering",
            {"request_id": f"{run}-close", "offering_id": offering.offering_id},
            token=organization,
        ),
    )

    # Watch the tape from before the first order. The stream's headers arrive once the server has
    # accepted the subscription; the resting sell's round trip then gives the server's
    # subscription task time to attach before anything can trade.
    trades = queue.Queue()
    tape = client.stream("mutua.v1.MarketData/StreamTrades", {"instrument": {"symbol": symbol}})
    tape.initial_metadata()
    threading.Thread(target=collect_trades, args=(tape, trades), daemon=True).start()

    # The price ceiling is the accrued value: par plus the return cap accrued since the first
    # issue, a moment ago, so no order may be priced above 10.00 yet.
    sell = client.call(
        "mutua.v1.Exchange/PlaceOrder",
        {
            "request_id": f"{run}-sell",
            "instrument": {"symbol": symbol},
            "side": "SIDE_SELL",
            "price": "9.95",
            "quantity": "5",
        },
        token=alice,
    )
    show("alice's sell", sell)
    show("book before the buy", client.call("mutua.v1.MarketData/GetBook", {"instrument": {"symbol": symbol}}))

    buy = client.call(
        "mutua.v1.Exchange/PlaceOrder",
        {
            "request_id": f"{run}-buy",
            "instrument": {"symbol": symbol},
            "side": "SIDE_BUY",
            "price": "10.00",
            "quantity": "5",
        },
        token=bob,
    )
    show("bob's crossing buy", buy)
    if enum_name(buy, "status") != "ORDER_STATUS_FILLED":
        raise SystemExit(f"the crossing buy did not fill: {enum_name(buy, 'status')}")

    try:
        trade = trades.get(timeout=5.0)
    except queue.Empty:
        raise SystemExit("no trade arrived on MarketData/StreamTrades within 5 s")
    finally:
        tape.cancel()
    if isinstance(trade, grpc.RpcError):
        raise trade
    show("the trade, from MarketData/StreamTrades", trade)

    show("book after the match", client.call("mutua.v1.MarketData/GetBook", {"instrument": {"symbol": symbol}}))
    for who, token in (("alice", alice), ("bob", bob), ("the organization", organization)):
        show(f"balances of {who}", client.call("mutua.v1.Accounts/GetBalances", {}, token=token))
    for who, token in (("alice", alice), ("bob", bob)):
        show(f"holdings of {who}", client.call("mutua.v1.Accounts/GetHoldings", {}, token=token))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--server",
        default=os.environ.get("MUTUA_SERVER", "127.0.0.1:50051"),
        help="host:port of the exchange, or the http:// URL the mutua CLI takes "
        "(default: $MUTUA_SERVER or 127.0.0.1:50051)",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("MUTUA_TOKEN"),
        help="the operator's bearer token (default: $MUTUA_TOKEN)",
    )
    args = parser.parse_args()
    if not args.token:
        parser.error("the operator token is required: --token or MUTUA_TOKEN (see data/operator.token)")

    # MUTUA_SERVER is shared with the mutua CLI, which takes a URL; grpcio wants host:port.
    server = args.server.removeprefix("http://")
    with grpc.insecure_channel(server) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=10)
        except grpc.FutureTimeoutError:
            sys.exit(f"no gRPC server answered at {server}")
        try:
            session(ReflectedClient(channel), args.token)
        except grpc.RpcError as error:
            # The engine's stable reason code travels in the `mutua-reason-code` trailer.
            reason = dict(error.trailing_metadata() or ()).get("mutua-reason-code")
            suffix = f" (mutua-reason-code {reason})" if reason else ""
            sys.exit(f"refused: {error.code().name}: {error.details()}{suffix}")


if __name__ == "__main__":
    main()
