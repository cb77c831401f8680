#!/usr/bin/env python3
"""Post-processing of scripts/real_pair_sweep.sh (standard library only).

    python3 scripts/real_pair_model.py OUT_DIR RTT [RTT ...]

Reads OUT_DIR/rtt_<RTT>.json (picospec-demo --json: every mode, picospec with cloud fill) and
OUT_DIR/rtt_<RTT>_nofill.json (picospec alone, --no-fill), writes OUT_DIR/sweep.tsv (measured tok/s of every mode per
RTT, then picospec without fill) and OUT_DIR/model.tsv (the model below per RTT), and prints a summary with the
crossover RTTs.

The section-5 model describes the pipeline without cloud fill (its figures come from the no-fill runs). Cloud fill
has no closed form here; what bounds it is that every token the cloud fills costs one cloud-ar step, so its rate
stays near cloud-ar's when drafts arrive too late to be used (long round trips).

The model is ALGORITHM.md section 5 with the figures the demo measured (taken from the lowest-RTT run):
  cloud-ar  streams every token: per prompt, n tokens take n * T_t + RTT (+ prefill, ignored), T_t = the cloud's
            time per forward pass in cloud-ar mode.
  picospec  per chunk of gamma drafts: a hit (all accepted, probability alpha^gamma) costs
            L_async = max(gamma * T_d, RTT + T_v); a miss costs L_sync = gamma * T_d + RTT + T_v (flush);
            a chunk commits E[L] tokens (the measured mean accepted length), so tok/s = E[L] / E[T].
  T_d = edge time per drafted token, T_v = cloud time per verify call, alpha = measured per-token acceptance.
"""
import json
import sys


def load(out, rtt):
    with open("%s/rtt_%s.json" % (out, rtt)) as f:
        return json.load(f)


def main():
    out, rtts = sys.argv[1], sys.argv[2:]
    docs = {r: load(out, r) for r in rtts}
    nofill = {r: load(out, r + "_nofill")["modes"][0] for r in rtts}
    for r in rtts:
        nofill[r]["mode"] = "picospec-nofill"
        docs[r]["modes"].append(nofill[r])
    modes = [m["mode"] for m in docs[rtts[0]]["modes"]]
    with open(out + "/sweep.tsv", "w") as f:
        f.write("rtt_ms\t" + "\t".join(modes) + "\n")
        for r in rtts:
            by = {m["mode"]: m for m in docs[r]["modes"]}
            f.write(r + "\t" + "\t".join("%.2f" % by[m]["tokens_per_s"] for m in modes) + "\n")

    base = {m["mode"]: m for m in docs[rtts[0]]["modes"]}
    ps, ar = base["picospec-nofill"], base["cloud-ar"]
    gamma = docs[rtts[0]]["gamma"]
    n = ar["tokens"] / len(docs[rtts[0]]["prompts"])
    T_t = ar["cloud_ms_per_forward"]
    T_v = ps["cloud_ms_per_forward"]
    T_d = ps["draft_ms_per_token"]
    alpha = ps["acceptance_rate"]
    EL = ps["mean_accepted_length"]

    def cloud_ar(rtt):
        return 1000.0 * n / (n * T_t + rtt)

    def picospec(rtt):
        hit = alpha ** gamma
        t = hit * max(gamma * T_d, rtt + T_v) + (1 - hit) * (gamma * T_d + rtt + T_v)
        return 1000.0 * EL / t

    with open(out + "/model.tsv", "w") as f:
        f.write("rtt_ms\tcloud_ar_model\tpicospec_model\n")
        r = 0.25
        while r <= 200:
            f.write("%.3f\t%.2f\t%.2f\n" % (r, cloud_ar(r), picospec(r)))
            r *= 1.1
    lo, hi = 0.0, 1000.0
    if picospec(hi) > cloud_ar(hi):
        cross = None
    else:
        for _ in range(100):
            mid = (lo + hi) / 2
            (lo, hi) = (mid, hi) if picospec(mid) > cloud_ar(mid) else (lo, mid)
        cross = lo
    def crossing(mode):
        found = None
        for a, b in zip(rtts, rtts[1:]):
            pa = {m["mode"]: m["tokens_per_s"] for m in docs[a]["modes"]}
            pb = {m["mode"]: m["tokens_per_s"] for m in docs[b]["modes"]}
            if pa[mode] >= pa["cloud-ar"] and pb[mode] < pb["cloud-ar"]:
                found = "between %s and %s ms" % (a, b)
        return found
    measured_cross = crossing("picospec-nofill")
    fill_cross = crossing("picospec")
    print("measured figures (RTT %s ms run): T_t %.2f ms/token (cloud-ar), T_v %.2f ms/verify call, "
          "T_d %.3f ms/draft token, alpha %.3f, mean accepted length %.2f, gamma %d"
          % (rtts[0], T_t, T_v, T_d, alpha, EL, gamma))
    print("model crossover, no fill (cloud-ar overtakes picospec): %s" % ("%.1f ms" % cross if cross else "none below 1 s"))
    print("measured crossover, no fill: %s" % (measured_cross or "not within the swept RTTs"))
    print("measured crossover, with cloud fill: %s" % (fill_cross or "not within the swept RTTs"))
    print("\nRTT ms  " + "  ".join("%9s" % m[:9] for m in modes) +
          "   picospec/c-ar  no-fill/c-ar  vs vanilla  model no-fill  model c-ar")
    for r in rtts:
        by = {m["mode"]: m["tokens_per_s"] for m in docs[r]["modes"]}
        print("%6s  " % r + "  ".join("%9.1f" % by[m] for m in modes) +
              "   %13.2f  %12.2f  %10.2f  %13.1f  %10.1f" % (by["picospec"] / by["cloud-ar"],
                                                            by["picospec-nofill"] / by["cloud-ar"],
                                                            by["picospec"] / by["vanilla"], picospec(float(r)),
                                                            cloud_ar(float(r))))


if __name__ == "__main__":
    main()
