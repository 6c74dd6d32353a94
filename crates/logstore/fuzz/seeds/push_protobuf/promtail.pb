
k
{job="x", a="b\"q"}(
─Бо╙hello world
trace_idabc(
─Бо╙hello world
trace_idabc