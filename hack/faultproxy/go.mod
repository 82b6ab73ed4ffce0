module podtask.local/faultproxy

go 1.26.0
