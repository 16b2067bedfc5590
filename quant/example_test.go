package quant_test

import (
	"errors"
	"fmt"
	"log"

	"github.com/flowdb/flowdb/quant"
)

// Train a quantizer on a sample, encode vectors to int8 codes (a quarter
// of their float32 size), and compare a query with the codes.
func Example() {
	sample := [][]float32{
		{0, 0, 0, 0},
		{1, 2, 3, 4},
		{0.5, 1, 1.5, 2},
		{1, 0, 1, 0},
	}
	q, err := quant.Train(sample, quant.Options{})
	if err != nil {
		log.Fatal(err)
	}
	var codes [][]int8
	for _, v := range sample {
		c, err := q.Encode(nil, v)
		if err != nil {
			log.Fatal(err)
		}
		codes = append(codes, c)
	}
	dec, err := q.Decode(nil, codes[2])
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("dim %d, vector 2 decodes to %.2f\n", q.Dim(), dec)
	// A prepared query compares against codes without decoding them.
	query, err := q.Prepare(quant.L2, []float32{1, 2, 3, 3.9})
	if err != nil {
		log.Fatal(err)
	}
	for i, c := range codes {
		fmt.Printf("vector %d: approx %.1f exact %.1f\n", i, query.Distance(c), quant.L2.Exact(sample[i], []float32{1, 2, 3, 3.9}))
	}
	_, err = q.Encode(nil, []float32{1, 2})
	fmt.Println("wrong dimension:", errors.Is(err, quant.ErrDimension))
	// Output:
	// dim 4, vector 2 decodes to [0.50 1.00 1.51 1.99]
	// vector 0: approx 29.2 exact 29.2
	// vector 1: approx 0.0 exact 0.0
	// vector 2: approx 7.1 exact 7.1
	// vector 3: approx 23.2 exact 23.2
	// wrong dimension: true
}
