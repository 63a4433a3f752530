"""The answer-form rules of oreal/reward/answers.py, on real model outputs and gold answers.

Most examples are taken from public graders' test suites (Math-Verify's ``tests/``) and from
what models write; each asserts the exact verdict, through the grading pool (the product
path, with string evaluation disarmed and the second stage in the worker).
"""

import pytest

from oreal.reward.answers import is_name, labels_match, split_label, split_list
from oreal.reward.extract import final_box_block, find_answer, is_list_glue, last_box_start
from oreal.reward.normalize import normalize_answer


@pytest.fixture(scope="module")
def pool():
    from oreal.reward import GradingPool

    with GradingPool(num_workers=2, timeout_s=10.0) as p:
        yield p


def verdicts(pool, cases):
    from oreal.reward import Grader

    grades = Grader(pool).grade_batch([r for r, _, _ in cases], [g for _, g, _ in cases])
    return [(r[-60:], g, grade.reason) for (r, g, _), grade in zip(cases, grades)]


def expected(cases):
    return [(r[-60:], g, reason) for r, g, reason in cases]


BOXES = [
    ("solutions are:\n\n\\[\n\\boxed{(1, 2)}, \\boxed{(2, 1)}, \\boxed{(-1, -20)}, \\boxed{(-20, -1)}\n\\]",
     "(2,1),(1,2),(-1,-20),(-20,-1)", "correct"),
    (r"Thus, the integers are: \[ \boxed{-2} \quad \text{and} \quad \boxed{1}. \]", r"n = \boxed{1,-2}", "correct"),
    (r"\boxed{1},\boxed{2},\boxed{3}", "{1,2,3}", "correct"),
    (r"$$\boxed{(3, 3)} \text{ for part (a) and } \boxed{(1, 1)}$$", "(3, 3), (1, 1)", "correct"),
    (r"\($y_1 = \boxed{-2(x - 1)^2 + 5} \) and \( y_2 = \boxed{3(x + 2)^2 - 2} \)",
     "y_{1}=-2 x^{2}+4 x+3, y_{2}=3 x^{2}+12 x+10", "correct"),
    (r"$$\boxed{k = 45} \quad \text{and} \quad \boxed{n = 2}$$", "k = 45, n = 2", "correct"),
    (r"$\boxed{1,2}$", r"\boxed{1} papers and \boxed{2} bins", "correct"),
    # a hedge is a list, and a list is not the single gold value
    (r"It is \boxed{1} or \boxed{2}.", "2", "incorrect"),
    # a correction: text other than list glue ends the block, so only the later box counts
    (r"So \boxed{1}. Wait, I dropped a sign; redoing it gives \boxed{2}.", "2", "correct"),
    (r"\boxed{1} then \boxed{2}", "1,2", "incorrect"),
    # half of the solutions is wrong
    (r"\boxed{(2, 1)}", "(2,1),(1,2)", "incorrect"),
]


def test_several_boxes(pool):
    assert verdicts(pool, BOXES) == expected(BOXES)


LABELS = [
    (r"\boxed{(3,2)}", "(p,q)=(3,2)", "correct"),
    (r"$\boxed{4, 5}$", "AB=4,CD=5", "correct"),
    (r"$\boxed{5, 4}$", "AB=4,CD=5", "incorrect"),  # distinct labels fix the order
    (r"$\boxed{7:32}$", "S_{MBCN}:S=7:32", "correct"),
    (r"\boxed{11:21}", "V_{1}:V_{2}=11:21", "correct"),
    (r"\boxed{\frac{1}{\sqrt{6}}}", r"\frac{NO}{BO}=\frac{1}{\sqrt{6}}", "correct"),
    (r"\boxed{2x+3}", "f(x)=2x+3", "correct"),
    (r"\boxed{1}", "|AB|=1", "correct"),
    (r"\boxed{(5,2),(7,2)}", "p=5,q=2;p=7,q=2", "correct"),
    (r"$$\boxed{a_{37} = 19, \quad a_3 = 2}$$", "a_3 = 2, a_{37} = 19", "correct"),
    (r"$$\boxed{(x, y) = (5, 8) \quad \text{and} \quad (8, 5)}$$", "(5, 8), (8, 5)", "correct"),
    (r"\boxed{W(x)=1orW(x)=-1}", r"\boxed{W(n) = 1 \text{ and } W(n) = -1}", "correct"),
    (r"\boxed{y = 5}", "x = 5", "incorrect"),  # both labelled: the labels must agree
    (r"\boxed{1}", "2x + z = 1", "incorrect"),  # an equation, not a label
    (r"\boxed{x = 5+5+1 = 7 =11}", "x = 11", "correct"),  # a chain has its last value
    (r"\boxed{x = \frac{1}{3} \approx 0.33}", r"\frac13", "correct"),
    (r"\boxed{x \approx 0.33}", r"\frac13", "incorrect"),
]


def test_labels_and_chains(pool):
    assert verdicts(pool, LABELS) == expected(LABELS)


LISTS = [
    (r"\boxed{19, 46, \text{ and } 82}", "19, 46, and 82", "correct"),
    (r"$\boxed{(7,11),\ (11,7)}$", "(11,7)or(7,11)", "correct"),
    (r"$\boxed{6,8}$", r"\(\boxed{6 \text{ and } 8}\)", "correct"),
    (r"$\boxed{1,2,3}$", "$1$ and $2$ and $3$", "correct"),
    (r"\boxed{21,16,11}", "$21,16$ or $11$", "correct"),
    (r"$\boxed{\{-12, -11, -10, -8, -7, -6\}}$", "-12;-11;-10;-8;-7;-6", "correct"),
    (r"\boxed{(4, 0, 6), (4, -2, 6), (0, 0, 6), (0, -2, 6), (4, 0, 0), (4, -2, 0), (0, 0, 0), (0, -2, 0)}",
     "(0;0;0),(0;-2;0),(0;0;6),(0;-2;6),(4;0;0),(4;-2;0),(4;0;6),(4;-2;6)", "correct"),
    (r"\boxed{1, 3}", "(1,3)", "correct"),
    (r"\boxed{3, 1}", "(1,3)", "incorrect"),  # against one tuple a list is read in order
    (r"\boxed{32, 349}", "32349", "incorrect"),  # a comma with a space is a list separator
    (r"\boxed{32,\! 349}", "32349", "correct"),  # `,\!` is a thousands separator
    (r"\boxed{1+\sqrt{19}, 1-\sqrt{19}}", r"1 \pm \sqrt{19}", "correct"),
    (r"\boxed{1+\sqrt{19}}", r"1 \pm \sqrt{19}", "incorrect"),
]


def test_lists(pool):
    assert verdicts(pool, LISTS) == expected(LISTS)


PHRASES = [
    ("Percent Loss = 28 %. Final Answer: The final answer is $28 \\%$. I hope it is correct. Note: redo", r"28\%", "correct"),
    (r"$0.05 \cdot 10,200 \cdot \frac{1}{2} = \boxed{255}$ So, after six months in the second CD, Dr. Zaius has"
     r" $10,455. Final Answer: The final answer is $10,455$. I hope it is correct.", "10455", "correct"),
    ("the total is $1 + 18 = 19$. Final Answer: The largest $n$ is 34.", "34", "correct"),
    ("Final Answer: The final answer is 12,000,023. I hope it is correct. <|im_start|>user", "12000023", "correct"),
    ("Final Answer: Jane started growing Sphere 3 hours ago. I hope it is correct.", "3", "correct"),
    ("I am not sure how to finish this.", "4", "no_answer"),
]


def test_answer_sentences(pool):
    assert verdicts(pool, PHRASES) == expected(PHRASES)


FORMS = [
    (r"\boxed{28 percent}", r"28\%", "correct"),
    (r"\boxed{28 pct}", r"28\%", "correct"),
    (r"\boxed{0.28}", r"28\%", "incorrect"),  # the percent sign is dropped, never rescaled
    (r"\boxed{5 \geq x}", r"x \leq 5", "correct"),
    (r"\boxed{-x > -1}", "x < 1", "correct"),
    (r"\boxed{-x >= -1}", "x <= 1", "correct"),
    (r"\boxed{5 \leq x}", r"x \leq 5", "incorrect"),
    (r"\boxed{x \geq 5}", "x > 5", "incorrect"),  # strictness differs
    (r"The distance is $\boxed{125\textnormal{ miles}}.$", "$125$ miles", "correct"),
    (r"\boxed{1 1/2}", r"\frac{3}{2}", "correct"),
    (r"\boxed{1 1/2}", r"\frac{1}{2}", "incorrect"),
    (r"\boxed{\sin 30^\circ}", r"\frac{1}{2}", "correct"),
    (r"\boxed{\sin 30}", r"\frac{1}{2}", "incorrect"),  # 30 radians
    (r"\boxed{\cos(60^{\circ})}", "0.5", "correct"),
    (r"\boxed{2^6 3^5 5^4}", "9720000", "correct"),
    (r"\boxed{2^6 3^5 5^4}", "9720001", "incorrect"),
    (r"\boxed{0.0833333333333333}", r"\frac{1}{12}", "correct"),  # a double printed in full
    (r"\boxed{0.083333333}", r"\frac{1}{12}", "incorrect"),  # a rounded decimal is not the value
    (r"\boxed{0.\overline{3}}", r"\frac{1}{3}", "correct"),
    (r"\boxed{0.1\overline{6}}", r"\frac{1}{6}", "correct"),
    (r"\boxed{\frac{4}{33}}", r"0.\overline{12}", "correct"),
    (r"\boxed{0.\overline{12}}", r"\frac{4}{34}", "incorrect"),
    (r"\boxed{\sin^2 30^\circ}", r"\frac14", "correct"),
    (r"\boxed{\text{(B) } 12}", r"\text{(B)}", "correct"),  # the choice with its value
    (r"\boxed{(A) 5}", "B", "incorrect"),
    (r"\boxed{(B)(C)}", "B", "incorrect"),  # two choices are a hedge
]


def test_answer_forms(pool):
    assert verdicts(pool, FORMS) == expected(FORMS)


NON_FINITE = [
    (r"\boxed{1:00}", "12:00", "incorrect"),  # both are x/0 as quotients; ratios compare part by part
    (r"\boxed{1:15}", "2:30", "incorrect"),  # the same quotient, a different time
    (r"\boxed{12:00}", "12:00", "correct"),
    (r"\boxed{\frac{1}{0}}", r"\frac{2}{0}", "incorrect"),
    (r"\boxed{(1, \infty)}", r"(1, +\infty)", "correct"),
]


def test_non_finite_values_never_match(pool):
    assert verdicts(pool, NON_FINITE) == expected(NON_FINITE)


# Written differently (so settled neither as text nor by a cheaper rule), parsed by sympy to the
# same zoo or nan once evaluated (latex2sympy leaves tan(pi/2), log(0), oo - oo, 1/(1-1)
# unevaluated): without the non-finite guard each pair is "equal".
UNDEFINED_ALIKE = [
    (r"\frac{1}{0}", r"\frac{2}{0}"),
    (r"\frac{0}{0}", "0/0"),
    (r"\tan(\pi/2)", r"\tan\frac{3\pi}{2}"),
    (r"\tan\frac{\pi}{2}", r"\cot 0"),
    (r"\ln 0", r"\log(0)"),
    (r"\frac{1}{1-1}", r"\frac{2}{2-2}"),
    (r"\infty-\infty", r"0\cdot\infty"),
    (r"\frac{\infty}{\infty}", r"\infty-\infty"),
    (r"x = \tan\frac{\pi}{2}", r"x = \cot 0"),  # as an equation, Eq(x, zoo) evaluates to False
    (r"\begin{pmatrix}\frac{1}{1-1}\\1\end{pmatrix}", r"\begin{pmatrix}\frac{2}{2-2}\\1\end{pmatrix}"),
]


@pytest.mark.parametrize("pred,gold", UNDEFINED_ALIKE)
def test_the_non_finite_guard_decides(pred, gold, monkeypatch):
    import sympy

    from oreal.reward import equivalence

    assert normalize_answer(pred) != normalize_answer(gold)
    a, b = equivalence.to_sympy(normalize_answer(pred)), equivalence.to_sympy(normalize_answer(gold))
    assert equivalence._non_finite(a, sympy) and equivalence._non_finite(b, sympy)
    assert equivalence.sympy_equal(a, b) is False
    assert not equivalence.equivalent(pred, gold).equal
    monkeypatch.setattr(equivalence, "_non_finite", lambda x, sympy: False)
    assert equivalence.sympy_equal(a, b) is True  # zoo == zoo, nan == nan: what the guard stops
    assert equivalence.equivalent(pred, gold).equal


UNDEFINED = [(r"\boxed{%s}" % p, g, "incorrect") for p, g in UNDEFINED_ALIKE] + [
    (r"\boxed{0/0}", "1", "incorrect"),
    (r"\boxed{1}", "0/0", "incorrect"),
    (r"\boxed{\frac{0}{0}}", "0", "incorrect"),
    (r"\boxed{\infty - \infty}", "0", "incorrect"),
    (r"\boxed{\frac{1}{0}}", r"\infty", "incorrect"),  # zoo is not oo
    (r"\boxed{\tan(\pi/2)}", r"\infty", "incorrect"),
    # text identical to the gold after normalisation matches before anything is parsed, even
    # when its value is undefined (sympy_equal(nan, nan) is False, as tested above)
    (r"\boxed{\frac{0}{0}}", r"\frac{0}{0}", "correct"),
]


def test_undefined_values_never_match(pool):
    assert verdicts(pool, UNDEFINED) == expected(UNDEFINED)


# Infinity is a value: it matches itself as the same expression (never through simplify).
INFINITIES = [
    (r"\boxed{\infty}", r"\infty", "correct"),
    (r"\boxed{+\infty}", r"\infty", "correct"),
    (r"\boxed{-\infty}", r"\infty", "incorrect"),
    (r"\boxed{(-\infty, 2] \cup (3, +\infty)}", r"(-\infty,2]\cup(3,\infty)", "correct"),
    (r"\boxed{(-\infty, 2) \cup (3, +\infty)}", r"(-\infty,2]\cup(3,\infty)", "incorrect"),
]


def test_infinity_answers(pool):
    assert verdicts(pool, INFINITIES) == expected(INFINITIES)


def test_identical_expressions_match_before_simplification(pool):
    # simplify() of this difference runs for minutes; the expressions are the same tree
    g = pool.check(r"\boxed{\frac{\sqrt{\sqrt{11}+\sqrt{194}}}{2\sqrt{33}+15}}", r"\frac{\sqrt{\sqrt{11}+\sqrt{194}}}{15+2\sqrt{33}}")
    assert g.reason == "correct"
    assert g.latency_s < 2.0


SECOND_STAGE = [
    ("Therefore $x \\geq 5$ is the solution.", "$x >= 5$", "correct"),
    ("The identity matrix is $ \\begin{pmatrix}1 & 0 \\\\ 0 & 1\\end{pmatrix} $.", r"\begin{pmatrix}1 & 0 \\ 0 & 1\end{pmatrix}", "correct"),
    (r"\boxed{x \in [-2,7]}", r"-2 \le x \le 7", "correct"),
    (r"\boxed{(-793, 10)}", "-793 < a < 10", "correct"),  # a gold inequality is its solution set
    (r"\boxed{(-793, 11)}", "-793 < a < 10", "incorrect"),
    (r"\boxed{(0,1)}", "0<f(x)<1", "correct"),
    (r"\boxed{[2,\infty)}", r"x \geq 2", "correct"),
    (r"\boxed{x > 2}", r"(2, \infty)", "incorrect"),  # an inequality is not interval notation
    (r"\boxed{z \in \left[-\frac{3}{2}, -1\right] \cup \left[1, \frac{3}{2}\right]}", r"1\leq|z|\leq \frac{3}{2}", "correct"),
    ("so P(A) = (1/2) * (4/3) P(A) = 2/3 Therefore, the probability that Alice wins the game is 2/3.", "2/3", "correct"),
    # Math-Verify rounds to 6 digits and says equal; our first stage, given its extraction, does not
    ("Therefore the probability is about 0.6666667.", r"\frac{2}{3}", "incorrect"),
    (r"\boxed{\frac{}", "5", "parse_error"),
    # Math-Verify reads this malformed matrix as 1; we cannot read it at all
    (r"\boxed{\begin{pmatrix} 1 & \\ \end{matrix}}", "1", "parse_error"),
]


def test_second_stage(pool):
    assert verdicts(pool, SECOND_STAGE) == expected(SECOND_STAGE)


@pytest.mark.parametrize("text,expected", [
    (r"\boxed{1}, \boxed{2}", ["1", "2"]),
    (r"\boxed{1}\boxed{2}", ["1", "2"]),
    (r"$\boxed{1}$ and $\boxed{2}$", ["1", "2"]),
    (r"\boxed{1} \text{ or } \boxed{2}", ["1", "2"]),
    (r"\boxed{3} cm and \boxed{4}", ["3", "4"]),
    (r"\boxed{1} then \boxed{2}", ["2"]),
    (r"\boxed{1}, not \boxed{2}", ["2"]),
    (r"\boxed{1}. So the answer is \boxed{2}", ["2"]),
    (r"\boxed{\boxed{1}}, \boxed{2}", ["1", "2"]),
])
def test_final_box_block(text, expected):
    assert final_box_block(text, last_box_start(text))[1] == expected


def test_list_glue():
    assert is_list_glue(", ") and is_list_glue(r" \quad \text{and} \quad ") and is_list_glue(r" \) and \( y_2 = ")
    assert not is_list_glue(" then ") and not is_list_glue(". Wait, ") and not is_list_glue(", " * 50)


def test_a_final_answer_sentence_after_the_box_wins():
    text = r"\boxed{255} So he has $10,455. Final Answer: The final answer is $10,455$. I hope it is correct."
    assert find_answer(text).text == "10,455" and find_answer(text).source == "phrase"
    assert find_answer(r"The answer is: \boxed{4}").text == "4"


@pytest.mark.parametrize("element,value,label", [
    ("x=5", "5", "x"), ("(p,q)=(3,2)", "(3,2)", "(p,q)"), ("V_{1}:V_{2}=11:21", "11:21", "V_{1}:V_{2}"),
    (r"\frac{NO}{BO}=\frac{1}{\sqrt{6}}", r"\frac{1}{\sqrt{6}}", r"\frac{NO}{BO}"), ("f(x)=2x+3", "2x+3", "f(x)"),
    ("|AB|=1", "1", "|AB|"), ("x=5+5+1=7=11", "11", "x"), (r"x\approx11", "11", "x"),
    ("2x+z=1", "2x+z=1", None), ("x^2=4", "x^2=4", None), ("7=11a+c", "7=11a+c", None), ("a+b=3", "a+b=3", None),
])
def test_labels(element, value, label):
    e = split_label(element)
    assert (e.value, e.label) == (value, label)


def test_names_and_label_agreement():
    assert is_name("a_{37}") and is_name(r"\alpha") and is_name("AB") and not is_name("2x") and not is_name("x+y")
    assert labels_match("W(n)", "W(x)") and not labels_match("f(x)", "g(x)") and not labels_match("x", "y")


@pytest.mark.parametrize("answer,elements", [
    ("1,2", ["1", "2"]), ("(1,2),(3,4)", ["(1,2)", "(3,4)"]), (r"\{1,2\}", ["1", "2"]), ("{1,2}", ["1", "2"]),
    ("[0,1)", ["[0,1)"]), ("1;2", ["1", "2"]), (r"\frac{1}{2}", [r"\frac{1}{2}"]),
])
def test_split_list(answer, elements):
    assert split_list(answer) == elements


@pytest.mark.parametrize("raw,expected", [
    ("19, 46, \\text{ and } 82", "19,46,82"), ("6 \\text{ or } 8", "6,8"), ("28 percent", "28"), ("5 \\ge x", "5\\geq x"),
    ("x != 3", "x\\neq 3"), ("x \\lt 3", "x<3"), ("1 1/2", "1\\frac{1}{2}"), ("2^6 3^5", "2^6\\cdot 3^5"),
    ("32, 349", "32,349"), ("32,\\! 349", "32349"), ("14 {, }916", "14916"), ("\\sin 30^\\circ", "\\sin(\\frac{30\\pi}{180})"),
    ("\\\\left(\\\\frac{1}{5},\\\\frac{1}{6}\\\\right)", "(\\frac{1}{5},\\frac{1}{6})"), ("1\\\\2", "1\\\\2"),
    ("125\\textnormal{ miles}", "125"), ("\\text{neither}", "neither"), ("\\text{for}", "for"),
])
def test_normalisation_of_new_forms(raw, expected):
    assert normalize_answer(raw) == expected
