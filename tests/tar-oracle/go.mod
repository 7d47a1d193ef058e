module tar-oracle

go 1.24
