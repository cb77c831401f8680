// Every built-in SparseCodec passes the installed SparseCodec conformance suite
// (picospec/testing/sparse_codec_conformance.hpp), the same one a user runs on their own codec.
#include <catch2/catch.hpp>

#include "picospec/sparse_codec.hpp"
#include "picospec/testing/sparse_codec_conformance.hpp"

using namespace picospec;

TEST_CASE("built-in codecs pass the SparseCodec conformance suite", "[codec][conformance]") {
  for (const char* spec : {"dense_f32", "topk_f32:8", "topk_f32:64:0.9", "topk_q:8", "topk_q:32", "topk_q:64:0.95"}) {
    DYNAMIC_SECTION(spec) {
      const auto codec = make_codec(spec);
      testing::check_sparse_codec_conformance(*codec, 1);
      testing::check_sparse_codec_conformance(*codec, 2);
    }
  }
}
