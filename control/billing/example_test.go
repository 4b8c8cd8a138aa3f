package billing_test

import (
	"fmt"

	"sbc/control/billing"
)

func ExampleTable_CallPrice() {
	t, err := billing.NewTable(billing.Config{
		Enabled: true,
		Rates: []billing.Rate{
			{Prefix: "+", PerMinute: "0.05"},
			{Prefix: "+1", PerMinute: "0.0100", PerSMS: "0.0075"},
		},
	})
	if err != nil {
		panic(err)
	}
	p, _ := t.CallPrice("+14155550100", 61)
	fmt.Println(p)
	p, _ = t.CallPrice("+442071234567", 61)
	fmt.Println(p)
	_, ok := t.SMSPrice("+442071234567", 1)
	fmt.Println(ok, t.RefuseUnrated())
	// Output:
	// 0.010167
	// 0.050834
	// false true
}
