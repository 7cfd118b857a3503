module egressgw

go 1.19
