#pragma once
// Groups the items of a multi-sequence evaluation (CausalLM::forward_batch, Verifier::score_batch) by the
// backend's batch key: the items whose owners share a non-null key, in their order, form one group; an item
// with a null key is a group of its own. Skipped items (`skip(item)`) join no group.
//
// Thread-safety: a pure function of its arguments.

#include <cstddef>
#include <span>
#include <vector>

namespace picospec::detail {

/// Calls `run(group)` (a std::span<const Item>) once per group, groups in the order of their first item.
template <class Item, class KeyOf, class Skip, class Run>
void for_each_batch_group(std::span<const Item> items, KeyOf key_of, Skip skip, Run run) {
  std::vector<bool> done(items.size(), false);
  std::vector<Item> group;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (done[i] || skip(items[i])) continue;
    const void* key = key_of(items[i]);
    group.clear();
    for (std::size_t j = i; j < items.size(); ++j) {
      if (done[j] || skip(items[j])) continue;
      if (j != i && (key == nullptr || key_of(items[j]) != key)) continue;
      group.push_back(items[j]);
      done[j] = true;
    }
    run(std::span<const Item>(group));
  }
}

}  // namespace picospec::detail
