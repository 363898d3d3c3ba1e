# Sourced by the benchmark scripts: core_busy CPU prints the busy ticks of that core so far,
# from /proc/stat: user, nice, system, irq and softirq. Softirq is where the kernel delivers
# the server's packets, which the process's own CPU time leaves out. Idle and iowait are not
# busy, and neither is steal: on a VM that is time the hypervisor gave to someone else while
# this core waited, which is the host's noise, not the server's cost.
core_busy() {
  awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8 }' /proc/stat
}
