# Sourced by the benchmark scripts: nsd_conf DIR PORT ZONEFILE [EXTRA-SERVER-LINES] writes
# DIR/nsd.conf for NSD serving app.example.com from ZONEFILE on 127.0.0.1@PORT, in the
# foreground, with every file under DIR and response rate limiting off (it would throttle a
# load generator's single source address; Meridian's is off by default too).
nsd_conf() {
  local dir=$1 port=$2 zone=$3 extra=${4:-}
  cat >"$dir/nsd.conf" <<EOC
server:
  ip-address: 127.0.0.1@$port
  server-count: 1
  username: ""
  chroot: ""
  database: ""
  zonelistfile: "$dir/zone.list"
  xfrdfile: "$dir/xfrd.state"
  xfrdir: "$dir"
  pidfile: "$dir/nsd.pid"
  logfile: "$dir/nsd.log"
  verbosity: 0
  rrl-ratelimit: 0
$extra
remote-control:
  control-enable: no
zone:
  name: app.example.com
  zonefile: "$zone"
EOC
}
