//! Why the API server refused to create a pod, and what that means for the task.

/// The API server's refusal, classified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CreateError {
    /// The pod spec is invalid (422/400): the task fails with the API server's message.
    Invalid(String),
    /// Admission refused the pod (Pod Security, a webhook): the task fails.
    Forbidden(String),
    /// A ResourceQuota is exhausted: wait and try again.
    Quota(String),
    /// podtask itself may not create pods here (RBAC): an operator problem, retried with backoff.
    OperatorForbidden(String),
    /// A pod with podtask's name exists and is not this task's: never touched, the task fails.
    Conflict(String),
    /// Throttled or the API server is unwell (429, 5xx, namespace terminating): retry with backoff.
    Transient(String),
}

/// Classify a failed pod create from the API server's Status: HTTP code, reason and message.
pub fn from_api_refusal(code: u16, reason: &str, message: &str) -> CreateError {
    let m = message.to_owned();
    match code {
        400 | 422 => CreateError::Invalid(m),
        403 if message.contains("exceeded quota")
            || message.contains("must specify limits") && message.contains("quota") =>
        {
            CreateError::Quota(m)
        }
        // RBAC denials read "User \"...\" cannot create resource \"pods\"..."; admission denials don't.
        403 if message.contains("cannot create resource") => CreateError::OperatorForbidden(m),
        403 => CreateError::Forbidden(m),
        _ if reason == "Invalid" => CreateError::Invalid(m),
        _ => CreateError::Transient(m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_refusals_table() {
        let cases = [
            (422, "Invalid", "Pod \"x\" is invalid: spec.containers[0].image: Required value", "Invalid"),
            (400, "BadRequest", "bad request", "Invalid"),
            (
                403,
                "Forbidden",
                "pods \"x\" is forbidden: violates PodSecurity \"restricted:latest\": privileged",
                "Forbidden",
            ),
            (403, "Forbidden", "admission webhook \"deny.example.com\" denied the request", "Forbidden"),
            (
                403,
                "Forbidden",
                "pods \"x\" is forbidden: exceeded quota: compute, requested: pods=1, used: pods=2, limited: pods=2",
                "Quota",
            ),
            (
                403,
                "Forbidden",
                "pods is forbidden: User \"system:serviceaccount:ops:podtask\" cannot create resource \"pods\" in API group \"\" in the namespace \"x\"",
                "OperatorForbidden",
            ),
            (429, "TooManyRequests", "too many requests", "Transient"),
            (500, "InternalError", "etcdserver: request timed out", "Transient"),
            (503, "ServiceUnavailable", "", "Transient"),
            (404, "NotFound", "namespaces \"x\" not found", "Transient"),
        ];
        for (code, reason, message, want) in cases {
            let got = from_api_refusal(code, reason, message);
            let kind = format!("{got:?}");
            assert!(kind.starts_with(want), "{code} {message}: got {kind}");
            let (CreateError::Invalid(m)
            | CreateError::Forbidden(m)
            | CreateError::Quota(m)
            | CreateError::OperatorForbidden(m)
            | CreateError::Conflict(m)
            | CreateError::Transient(m)) = got;
            assert_eq!(m, message, "the API server's message is kept for the user");
        }
    }
}
