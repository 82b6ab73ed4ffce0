-- Argo CD health check for podtask.dev/PodTask.
--
-- Install it in argocd-cm as resource.customizations.health.podtask.dev_PodTask (see docs/gitops.md).
-- Argo CD runs it with the live object in the global `obj` and reads back {status, message}.
-- It is plain Lua 5.1 (Argo CD embeds gopher-lua) and uses only the base and string libraries.
--
--   no status yet, or status.observedGeneration < metadata.generation -> Progressing "Waiting for the operator"
--   phase Pending | Starting | Running                                -> Progressing, with status.message
--   phase Succeeded                                                   -> Healthy
--   phase Failed                                                      -> Degraded, "<reason>: <message>"
-- Without a phase (an older operator, or a status written only as conditions) the kstatus conditions decide:
-- Stalled/Failed True -> Degraded, Complete True -> Healthy, otherwise Progressing.

local WAITING = "Waiting for the operator"

-- A condition of the given type whose status is "True", or nil.
local function trueCondition(status, condType)
  if type(status.conditions) ~= "table" then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if type(c) == "table" and c.type == condType and c.status == "True" then
      return c
    end
  end
  return nil
end

local function nonEmpty(s)
  return type(s) == "string" and s ~= ""
end

-- "reason: message", or whichever of the two exists, or the fallback.
local function describe(reason, message, fallback)
  if nonEmpty(reason) and nonEmpty(message) then
    return reason .. ": " .. message
  elseif nonEmpty(message) then
    return message
  elseif nonEmpty(reason) then
    return reason
  end
  return fallback
end

local function health(o)
  local status = o.status
  if type(status) ~= "table" then
    return { status = "Progressing", message = WAITING }
  end

  -- The operator has not yet looked at the latest spec: what status says is about an older generation.
  -- A status without observedGeneration counts as stale: the operator always writes it.
  local generation = tonumber(o.metadata and o.metadata.generation)
  local observed = tonumber(status.observedGeneration)
  if generation ~= nil and (observed == nil or observed < generation) then
    return { status = "Progressing", message = WAITING }
  end

  local phase = status.phase
  if phase == "Succeeded" then
    return { status = "Healthy", message = describe(nil, status.message, "Succeeded") }
  elseif phase == "Failed" then
    return { status = "Degraded", message = describe(status.reason, status.message, "Failed") }
  elseif phase == "Pending" or phase == "Starting" or phase == "Running" then
    return { status = "Progressing", message = describe(nil, status.message, describe(status.reason, nil, phase)) }
  elseif nonEmpty(phase) then
    return { status = "Unknown", message = "Unknown phase " .. phase }
  end

  -- No phase: fall back on the conditions (kstatus and Job-style).
  local failed = trueCondition(status, "Stalled") or trueCondition(status, "Failed")
  if failed ~= nil then
    return { status = "Degraded", message = describe(failed.reason, failed.message, "Failed") }
  end
  local complete = trueCondition(status, "Complete")
  if complete ~= nil then
    return { status = "Healthy", message = describe(nil, complete.message, "Succeeded") }
  end
  local reconciling = trueCondition(status, "Reconciling")
  if reconciling ~= nil then
    return { status = "Progressing", message = describe(nil, reconciling.message, WAITING) }
  end
  return { status = "Progressing", message = WAITING }
end

return health(obj)
