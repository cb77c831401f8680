# gnuplot -e "tsv='sweep.tsv'; model='model.tsv'; png='out.png'" scripts/plot_real_pair.gp
set terminal pngcairo size 900,520 font ",11"
set output png
set title "Our trained pair (21M target / 1M draft), picospec-demo, T = 0.8, 100 Mbit/s links"
set xlabel "round-trip time (ms)"
set ylabel "tokens / s"
set logscale x
set key outside right
set grid
plot for [i=2:6] tsv using 1:i with linespoints lw 2 title columnheader(i), \
     model using 1:2 with lines dt 2 lc rgb "#555555" title "cloud-ar (model)", \
     model using 1:3 with lines dt 3 lc rgb "#000000" title "picospec (model)"
