# jq helpers shared by the podtask kwok stages (inlined into stages.yaml by gen-stages.sh).
# Times are epoch seconds (floats); durations accept Go-style strings ("2s", "1500ms", "1m30s") or plain seconds.
def sc: (.metadata.annotations["kwok.podtask.dev/scenario"] // "succeed");
def dur: if . == null or . == "" then null elif test("^[0-9]+(\\.[0-9]+)?$") then tonumber else ([scan("([0-9]*\\.?[0-9]+)(ns|us|µs|ms|s|m|h)") | (.[0] | tonumber) * ({"ns": 0.000000001, "us": 0.000001, "µs": 0.000001, "ms": 0.001, "s": 1, "m": 60, "h": 3600}[.[1]])] | add) end;
def runfor: ((.metadata.annotations["kwok.podtask.dev/run-for"] | dur) // 1);
def pullfor: ((.metadata.annotations["kwok.podtask.dev/pull-for"] | dur) // 4);
def waiting: [.status.containerStatuses[]?.state.waiting.reason | strings];
def has_waiting($r): waiting | any(. == $r);
def started: ([.status.containerStatuses[]?.state.running.startedAt | strings] | first) as $t | if $t then ($t | fromdate) else null end;
# API timestamps have 1s precision: finish exactly run-for after the Running event, and never more than 1s late on later events.
def run_end: started as $t | runfor as $r | if $t then ([$t + $r, ([now + $r, $t + 1 + $r] | min)] | max) else now + $r end;
def pull_end: if .status.startTime then (.status.startTime | fromdate) + 0.5 + pullfor else now + pullfor end;
# kwok.podtask.dev/ignore-active-deadline: "true" plays a kubelet that never enforces activeDeadlineSeconds (benchmarks
# measure the operator's own deadline enforcement with it).
def deadline: if .metadata.annotations["kwok.podtask.dev/ignore-active-deadline"] == "true" then null
  elif .spec.activeDeadlineSeconds != null and .status.startTime != null then (.status.startTime | fromdate) + .spec.activeDeadlineSeconds else null end;
# true when activeDeadlineSeconds will fire before any other transition of the pod.
def deadline_first: deadline as $d | if $d == null then false
  elif .status.phase == "Running" then (sc == "run-forever") or ($d < ((started // now) + runfor))
  elif .status.phase == "Pending" then
    if has_waiting("ImagePullBackOff") then (sc != "pull-rate-limited") or ($d < pull_end)
    else has_waiting("InvalidImageName") or has_waiting("CreateContainerConfigError") end
  else false end;
def delay_until($t): "\((([$t - now, 0] | max) * 1000) | floor)ms";
