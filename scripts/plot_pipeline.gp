# Plots the pipeline sweep (scripts/pipeline_sweep.sh). Usage:
#   gnuplot -e "tsv='build/pipeline-sweep/pipeline_sweep.tsv'; outdir='docs/img'" scripts/plot_pipeline.gp
# Points = measured, dashed lines = analytic model. SYNTHETIC models with the paper's latency profiles.
if (!exists("tsv")) tsv = 'build/pipeline-sweep/pipeline_sweep.tsv'
if (!exists("outdir")) outdir = 'docs/img'
if (!exists("suffix")) suffix = ''
if (!exists("label")) label = ''
picospec_is = (label eq '') ? '' : ' (picospec: '.label.')'
set terminal pngcairo size 1200,500 font ",10" noenhanced
set datafile separator "\t"
set key top right box opaque
set grid
set ylabel "tokens/s (profile speed)"
modes = "cloud-ar vanilla paper picospec"
colors = "#666666 #d95f02 #7570b3 #1b9e77"
# rows of one profile / sweep / mode (awk keeps the lines connected; a 1/0 filter would break them)
rows(p, s, m) = sprintf("< awk -F'\t' '$1 == \"%s\" && $2 == \"%s\" && $5 == \"%s\"' '%s'", p, s, m, tsv)

set output outdir.'/pipeline'.suffix.'_rtt.png'
set multiplot layout 1,2 title "picospec-bench-pipeline, SYNTHETIC models: throughput vs RTT (alpha 0.8, gamma 4, depth 1, 100/100 Mbit/s)".picospec_is
set xlabel "RTT (ms)"
set logscale x
set xrange [4:250]
do for [p in "qwen-paper llama-paper"] {
  set title p
  plot for [i=1:4] rows(p, "rtt", word(modes, i)) using 3:6 \
         with linespoints lw 2 pt 7 lc rgb word(colors, i) title word(modes, i), \
       for [i=1:4] rows(p, "rtt", word(modes, i)) using 3:7 with lines dt 2 lc rgb word(colors, i) notitle
}
unset multiplot
unset logscale x
set xrange [*:*]

set output outdir.'/pipeline'.suffix.'_alpha.png'
set multiplot layout 1,2 title "picospec-bench-pipeline, SYNTHETIC models: throughput vs draft agreement alpha (RTT 20 ms, gamma 4, depth 1)".picospec_is
set xlabel "alpha (per-token acceptance)"
set key top left
do for [p in "qwen-paper llama-paper"] {
  set title p
  plot for [i=1:4] rows(p, "alpha", word(modes, i)) using 4:6 \
         with linespoints lw 2 pt 7 lc rgb word(colors, i) title word(modes, i), \
       for [i=1:4] rows(p, "alpha", word(modes, i)) using 4:7 with lines dt 2 lc rgb word(colors, i) notitle
}
unset multiplot
