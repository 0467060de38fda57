module meshrev.dev/differential

go 1.22
