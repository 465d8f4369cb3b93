/*
 * noop_contract — a contract that does nothing and exits 0, for measuring
 * what a contract run costs (bench/contract_run.py).
 */
int
main(void)
{
	return 0;
}
