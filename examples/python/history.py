#!/usr/bin/env python3
"""List your own orders, fills and the year's statement from Mutua's history, in Python.

Driven by server reflection alone (no generated code, no .proto files). Pages through
History.ListOrders and History.ListFills until the listing ends, then asks History.GetStatement
for the year. With a regulator's or the operator's token, --participant reads anyone's.

Usage:
  python history.py --server 127.0.0.1:50051 --token "$ALICE" --year 2026
or set MUTUA_SERVER and MUTUA_TOKEN.
"""

import argparse
import datetime
import os
import sys

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)


def unary(channel, pool, method_name):
    method = pool.FindServiceByName("mutua.v1.History").FindMethodByName(method_name)
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    call = channel.unary_unary(
        f"/mutua.v1.History/{method_name}",
        request_serializer=request_class.SerializeToString,
        response_deserializer=response_class.FromString,
    )
    return request_class, call


def every_page(request_class, call, metadata, participant, field):
    """Yields every entry of a listing, page after page."""
    token = b""
    while True:
        request = request_class()
        request.filter.participant_id = participant
        request.filter.page_size = 1000
        request.filter.page_token = token
        reply = call(request, metadata=metadata)
        yield from getattr(reply, field)
        if not reply.next_page_token:
            return
        token = reply.next_page_token


def when(nanoseconds):
    moment = datetime.datetime.fromtimestamp(nanoseconds / 1e9, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default=os.environ.get("MUTUA_SERVER", "127.0.0.1:50051"))
    parser.add_argument("--token", default=os.environ.get("MUTUA_TOKEN"))
    parser.add_argument("--participant", type=int, default=0, help="whose (0: your own)")
    parser.add_argument("--year", type=int, default=datetime.datetime.now(datetime.timezone.utc).year)
    args = parser.parse_args()
    if not args.token:
        sys.exit("a token is needed: --token or MUTUA_TOKEN")
    metadata = [("authorization", f"Bearer {args.token}")]
    channel = grpc.insecure_channel(args.server)
    pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
    states = pool.FindEnumTypeByName("mutua.v1.OrderState")
    sides = pool.FindEnumTypeByName("mutua.v1.Side")
    try:
        orders_request, list_orders = unary(channel, pool, "ListOrders")
        for order in every_page(orders_request, list_orders, metadata, args.participant, "orders"):
            state = states.values_by_number[order.state].name.removeprefix("ORDER_STATE_").lower()
            if order.cancel_reason:
                state += f" ({order.cancel_reason})"
            side = sides.values_by_number[order.side].name.removeprefix("SIDE_").lower()
            print(
                f"{when(order.placed_at_ns)} order {order.order_id} {order.symbol} {side} "
                f"{order.quantity} @ {order.price}: {state}, filled {order.filled_quantity} "
                f"for {order.filled_notional} in {order.fill_count} fills"
            )
        fills_request, list_fills = unary(channel, pool, "ListFills")
        for fill in every_page(fills_request, list_fills, metadata, args.participant, "fills"):
            side = sides.values_by_number[fill.side].name.removeprefix("SIDE_").lower()
            print(
                f"{when(fill.time_ns)} fill #{fill.sequence} {fill.symbol} order {fill.order_id} "
                f"{side} {fill.quantity} @ {fill.price} = {fill.notional}"
                + (" (maker)" if fill.maker else "")
            )
        statement_request, get_statement = unary(channel, pool, "GetStatement")
        request = statement_request(participant_id=args.participant, year=args.year)
        statement = get_statement(request, metadata=metadata)
        print(json_format.MessageToJson(statement, indent=2))
    except grpc.RpcError as error:
        sys.exit(f"{error.code().name}: {error.details()}")


if __name__ == "__main__":
    main()
