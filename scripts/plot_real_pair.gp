# gnuplot -e "tsv='sweep.tsv'; model='model.tsv'; png='out.png'" scripts/plot_real_pair.gp
# Columns of sweep.tsv: rtt_ms, cloud-ar, edge-only, vanilla, paper, picospec (with cloud fill), picospec-nofill
# (edge-only, the draft alone, is off the scale and not a target-quality mode: left out).
set terminal pngcairo size 900,520 font ",11"
set output png
set title "Our pair (21M target / 1M draft), picospec-demo defaults, T 0.8, 100 Mbit/s"
set xlabel "round-trip time (ms)"
set ylabel "tokens / s"
set logscale xy
set key bottom left font ",9"
set grid
plot tsv using 1:2 with linespoints lw 2 title "cloud-ar", \
     tsv using 1:4 with linespoints lw 2 title "vanilla", \
     tsv using 1:5 with linespoints lw 2 title "paper", \
     tsv using 1:6 with linespoints lw 3 title "picospec (cloud fill)", \
     tsv using 1:7 with linespoints lw 2 title "picospec, no fill", \
     model using 1:2 with lines dt 2 lc rgb "#555555" title "cloud-ar (model)", \
     model using 1:3 with lines dt 3 lc rgb "#000000" title "picospec no fill (model, depth 1)"
