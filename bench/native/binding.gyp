{
  "targets": [
    {
      "target_name": "sparq_bench_openblas",
      "sources": [
        "openblas_direct.c"
      ],
      "cflags": [
        "-O2"
      ],
      "libraries": [
        "-lopenblas"
      ]
    }
  ]
}
