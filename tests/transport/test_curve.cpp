// CURVE: an edge that knows the server's public key talks to it; an edge with the wrong key cannot.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <cstdio>

#include "picospec/zmq/zmq_transport.hpp"

using namespace picospec;
using namespace std::chrono_literals;

namespace {
// Skip visibly (ctest shows "Skipped", SKIP_RETURN_CODE 77) when this libzmq was built without CURVE.
struct CurveOrSkip {
  CurveOrSkip() {
    if (!zmq::curve_available()) {
      std::fprintf(stderr, "SKIP: libzmq has no CURVE support\n");
      std::exit(77);
    }
  }
} const curve_or_skip;

zmq::ZmqOptions server_opts(const zmq::CurveKeyPair& keys) {
  zmq::ZmqOptions o;
  o.curve.enabled = true;
  o.curve.server_secret_key = keys.secret_key;
  return o;
}
zmq::ZmqOptions client_opts(const std::string& server_public) {
  zmq::ZmqOptions o;
  o.curve.enabled = true;
  o.curve.server_public_key = server_public;
  return o;
}
}  // namespace

TEST_CASE("curve: right key talks, wrong key cannot", "[zmq][curve]") {
  const auto server_keys = zmq::generate_curve_keypair();
  CHECK(server_keys.public_key.size() == 40);
  CHECK(server_keys.secret_key.size() == 40);
  zmq::ZmqServerTransport server("tcp://127.0.0.1:*", server_opts(server_keys));

  zmq::ZmqClientTransport good(server.endpoint(), client_opts(server_keys.public_key));
  REQUIRE(good.send(Frame{1, 2, 3}));
  PeerReceived r = server.recv(5000ms);
  REQUIRE(r.ok());
  CHECK(r.frame == Frame{1, 2, 3});
  REQUIRE(server.send(r.peer, Frame{4, 5}));
  Received back = good.recv(5000ms);
  REQUIRE(back.ok());
  CHECK(back.frame == Frame{4, 5});

  const auto impostor_keys = zmq::generate_curve_keypair();  // not the server's key
  zmq::ZmqClientTransport bad(server.endpoint(), client_opts(impostor_keys.public_key));
  (void)bad.send(Frame{9, 9, 9});  // queued locally; the handshake never completes
  CHECK(server.recv(800ms).status == RecvStatus::timeout);
  CHECK(bad.recv(200ms).status == RecvStatus::timeout);

  // A plain (non-CURVE) client cannot talk to a CURVE server either.
  zmq::ZmqClientTransport plain(server.endpoint());
  (void)plain.send(Frame{7});
  CHECK(server.recv(500ms).status == RecvStatus::timeout);

  // The good client still works.
  REQUIRE(good.send(Frame{6}));
  r = server.recv(5000ms);
  REQUIRE(r.ok());
  CHECK(r.frame == Frame{6});
}

TEST_CASE("curve: bad keys are refused at construction", "[zmq][curve]") {
  zmq::ZmqOptions o;
  o.curve.enabled = true;
  o.curve.server_secret_key = "short";
  CHECK_THROWS_AS(zmq::ZmqServerTransport("tcp://127.0.0.1:*", o), picospec::Error);
  zmq::ZmqOptions c;
  c.curve.enabled = true;
  CHECK_THROWS_AS(zmq::ZmqClientTransport("tcp://127.0.0.1:1", c), picospec::Error);
  CHECK_THROWS_AS(zmq::ZmqServerTransport("bogus://x"), picospec::Error);
}
