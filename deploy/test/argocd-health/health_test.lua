-- Tests of docs/argocd-health.lua, the Argo CD health check for PodTasks.
--
--   lua health_test.lua path/to/argocd-health.lua
--
-- Runs the script the way Argo CD does: a fresh environment per object with the object in the global `obj`, only
-- the base, string, table and math libraries (no io/os), and the returned table read as {status, message}.
-- Plain Lua 5.1 so it runs under lua5.1, lua5.4 and gopher-lua (Argo CD's interpreter) alike.
-- Prints "N passed, M failed" and exits non-zero on any failure.

local script = arg and arg[1] or "docs/argocd-health.lua"

local function podtask(generation, status, extraMeta)
  local meta = { name = "nightly-export", namespace = "data", uid = "4c1e-uid", generation = generation,
                 creationTimestamp = "2026-01-02T03:00:00Z" }
  for k, v in pairs(extraMeta or {}) do meta[k] = v end
  return {
    apiVersion = "podtask.dev/v1alpha1",
    kind = "PodTask",
    metadata = meta,
    spec = {
      executionTimeout = "30m",
      retry = { limit = 2 },
      template = { spec = { containers = { { name = "main", image = "registry.example/export:1.4" } } } },
    },
    status = status,
  }
end

local function cond(t, s, reason, message)
  return { type = t, status = s, reason = reason, message = message, lastTransitionTime = "2026-01-02T03:04:05Z",
           observedGeneration = 1 }
end

local cases = {
  {
    name = "just created: no status at all",
    obj = podtask(1, nil),
    status = "Progressing", message = "Waiting for the operator",
  },
  {
    name = "empty status, no observedGeneration",
    obj = podtask(1, {}),
    status = "Progressing", message = "Waiting for the operator",
  },
  {
    name = "status from an older generation (spec edited, not yet observed) even though it says Succeeded",
    obj = podtask(3, { phase = "Succeeded", reason = "Completed", message = "Pod finished", observedGeneration = 2,
                       conditions = { cond("Complete", "True", "Completed", "done") } }),
    status = "Progressing", message = "Waiting for the operator",
  },
  {
    name = "status written without observedGeneration counts as not observed",
    obj = podtask(1, { phase = "Failed", reason = "PodFailed", message = "exit 1" }),
    status = "Progressing", message = "Waiting for the operator",
  },
  {
    name = "Pending: backing off before the next attempt",
    obj = podtask(1, { phase = "Pending", reason = "BackingOff", attempt = 1, observedGeneration = 1,
                       message = "Attempt 1 ended with ImagePullTimeout; attempt 2 starts at 2026-01-02T03:10:00Z",
                       nextAttemptTime = "2026-01-02T03:10:00Z",
                       conditions = { cond("Reconciling", "True", "BackingOff", "backing off") } }),
    status = "Progressing",
    message = "Attempt 1 ended with ImagePullTimeout; attempt 2 starts at 2026-01-02T03:10:00Z",
  },
  {
    name = "Starting: registry rate-limiting the image pull",
    obj = podtask(1, { phase = "Starting", reason = "ImagePullRateLimited", attempt = 1, observedGeneration = 1,
                       podName = "nightly-export-1",
                       message = "toomanyrequests: You have reached your pull rate limit",
                       conditions = { cond("Reconciling", "True", "ImagePullRateLimited", "") } }),
    status = "Progressing", message = "toomanyrequests: You have reached your pull rate limit",
  },
  {
    name = "Starting: unschedulable, the scheduler's message surfaces",
    obj = podtask(1, { phase = "Starting", reason = "Unschedulable", attempt = 1, observedGeneration = 1,
                       message = "0/3 nodes are available: 3 Insufficient memory." }),
    status = "Progressing", message = "0/3 nodes are available: 3 Insufficient memory.",
  },
  {
    name = "Running",
    obj = podtask(1, { phase = "Running", reason = "Running", attempt = 2, observedGeneration = 1,
                       podName = "nightly-export-2", message = "Pod nightly-export-2 is running (attempt 2 of 3)",
                       conditions = { cond("Reconciling", "True", "Running", "running") } }),
    status = "Progressing", message = "Pod nightly-export-2 is running (attempt 2 of 3)",
  },
  {
    name = "Running without a message falls back to the reason",
    obj = podtask(1, { phase = "Running", reason = "Running", observedGeneration = 1 }),
    status = "Progressing", message = "Running",
  },
  {
    name = "Pending with neither message nor reason falls back to the phase",
    obj = podtask(1, { phase = "Pending", observedGeneration = 1 }),
    status = "Progressing", message = "Pending",
  },
  {
    name = "Succeeded",
    obj = podtask(1, { phase = "Succeeded", reason = "Completed", attempt = 1, observedGeneration = 1, exitCode = 0,
                       message = "Pod nightly-export-1 succeeded", completionTime = "2026-01-02T03:20:00Z",
                       conditions = { cond("Complete", "True", "Completed", "done"),
                                      cond("Reconciling", "False", "Completed", "") } }),
    status = "Healthy", message = "Pod nightly-export-1 succeeded",
  },
  {
    name = "Succeeded without a message",
    obj = podtask(2, { phase = "Succeeded", reason = "Completed", observedGeneration = 2 }),
    status = "Healthy", message = "Succeeded",
  },
  {
    name = "Failed: deadline exceeded",
    obj = podtask(1, { phase = "Failed", reason = "DeadlineExceeded", attempt = 3, observedGeneration = 1,
                       message = "The 30m execution budget ran out during attempt 3",
                       conditions = { cond("Failed", "True", "DeadlineExceeded", "budget"),
                                      cond("Stalled", "True", "DeadlineExceeded", "budget") } }),
    status = "Degraded", message = "DeadlineExceeded: The 30m execution budget ran out during attempt 3",
  },
  {
    name = "Failed: invalid image name (permanent, no retry)",
    obj = podtask(1, { phase = "Failed", reason = "InvalidImageName", attempt = 1, observedGeneration = 1,
                       message = "couldn't parse image name \"registry.example/Export:1.4\"" }),
    status = "Degraded", message = "InvalidImageName: couldn't parse image name \"registry.example/Export:1.4\"",
  },
  {
    name = "Failed without a message shows the reason",
    obj = podtask(1, { phase = "Failed", reason = "StartupTimeout", observedGeneration = 1 }),
    status = "Degraded", message = "StartupTimeout",
  },
  {
    name = "a phase this check does not know is Unknown, not silently healthy",
    obj = podtask(1, { phase = "Paused", observedGeneration = 1 }),
    status = "Unknown", message = "Unknown phase Paused",
  },
  {
    name = "no phase, kstatus Stalled=True: Degraded with the condition's reason and message",
    obj = podtask(1, { observedGeneration = 1,
                       conditions = { cond("Stalled", "True", "PodFailed", "container main exited with 2") } }),
    status = "Degraded", message = "PodFailed: container main exited with 2",
  },
  {
    name = "no phase, Complete=True: Healthy",
    obj = podtask(1, { observedGeneration = 1, conditions = { cond("Complete", "True", "Completed", "all done") } }),
    status = "Healthy", message = "all done",
  },
  {
    name = "no phase, Complete=False and Reconciling=True: Progressing",
    obj = podtask(1, { observedGeneration = 1, conditions = { cond("Complete", "False", "Running", ""),
                                                             cond("Reconciling", "True", "Running", "running") } }),
    status = "Progressing", message = "running",
  },
  {
    name = "numbers decoded as floats (as Argo CD passes JSON numbers) compare by value",
    obj = podtask(2.0, { phase = "Succeeded", observedGeneration = 2, message = "ok" }),
    status = "Healthy", message = "ok",
  },
  {
    name = "no metadata.generation: nothing to compare against",
    obj = podtask(nil, { phase = "Succeeded", message = "ok" }),
    status = "Healthy", message = "ok",
  },
  {
    name = "being deleted while running is still judged by its status",
    obj = podtask(1, { phase = "Running", observedGeneration = 1, message = "running" },
                  { deletionTimestamp = "2026-01-02T03:30:00Z" }),
    status = "Progressing", message = "running",
  },
}

-- Load the script once per object in a fresh sandbox (Lua 5.1 setfenv, or 5.2+ load with env).
local function loadSandboxed(path, env)
  if setfenv then
    local chunk, err = loadfile(path)
    if not chunk then return nil, err end
    setfenv(chunk, env)
    return chunk
  end
  return loadfile(path, "t", env)
end

local function sandbox(o)
  return {
    obj = o,
    pairs = pairs, ipairs = ipairs, next = next, type = type, tostring = tostring, tonumber = tonumber,
    select = select, unpack = unpack, error = error, pcall = pcall, assert = assert, setmetatable = setmetatable,
    getmetatable = getmetatable, rawget = rawget, rawset = rawset, rawequal = rawequal,
    string = string, table = table, math = math,
  }
end

local passed, failed = 0, 0
for i, c in ipairs(cases) do
  local chunk, err = loadSandboxed(script, sandbox(c.obj))
  local ok, hs
  if chunk then
    ok, hs = pcall(chunk)
  else
    ok, hs = false, err
  end
  local problem
  if not ok then
    problem = "script error: " .. tostring(hs)
  elseif type(hs) ~= "table" then
    problem = "returned " .. type(hs) .. ", not a table"
  elseif hs.status ~= c.status or hs.message ~= c.message then
    problem = string.format("got {status=%q, message=%q}, want {status=%q, message=%q}",
      tostring(hs.status), tostring(hs.message), c.status, c.message)
  else
    local valid = { Healthy = true, Progressing = true, Degraded = true, Suspended = true, Missing = true, Unknown = true }
    if not valid[hs.status] then problem = "not an Argo CD health status: " .. tostring(hs.status) end
  end
  if problem then
    failed = failed + 1
    print(string.format("FAIL %2d - %s: %s", i, c.name, problem))
  else
    passed = passed + 1
    print(string.format("ok   %2d - %s -> %s %q", i, c.name, hs.status, hs.message))
  end
end
print(string.format("%d passed, %d failed", passed, failed))
if failed > 0 then os.exit(1) end
