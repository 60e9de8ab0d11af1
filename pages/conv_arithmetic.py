"""Conv arithmetic: output size from N, F, P, S, D with the formula filled in, where the kernel lands,
and the "three 3×3 layers vs one 7×7" comparison of the course notes."""
import pandas as pd
import streamlit as st

from explorer.receptive import compare_stack, conv_arithmetic
from explorer.receptive import (GAP, INPUT, MAX_GRID_SIDE, PADDING, TAP, UNVISITED, UNVISITED_PADDING,
                                kernel_positions_figure, stack_diagram_figure)
from ui.common import run_through_app, t

run_through_app()  # app.py's sidebar and navigation around this page, also on a cold deep link

st.title(t("rf.arith_title"))
st.caption(t("rf.arith_intro"))


def within(key: str, low: int, high: int, default: int) -> None:
    """The widget's state inside its range before the widget is drawn (a value set from outside, e.g. a test or an
    old session, would make Streamlit raise instead of drawing)."""
    value = st.session_state.get(key, default)
    try:
        value = int(value)
    except (TypeError, ValueError):
        value = default
    st.session_state[key] = max(low, min(value, high))


# N reaches the course notes' own examples (AlexNet's 227 with F = 11, S = 4 → 55; VGG's 224): the formula and the
# metrics cost nothing at any size, and the cell grid is drawn only while it stays legible (MAX_GRID_SIDE).
# ui/links.py's "conv_arithmetic" parameters carry the same ranges.
LIMITS = {"ca_n": (1, 512, 7), "ca_f": (1, 15, 3), "ca_p": (0, 16, 0), "ca_s": (1, 8, 2), "ca_d": (1, 6, 1)}
for name, (low, high, value) in LIMITS.items():
    within(name, low, high, value)
c = st.columns(5)
n = c[0].number_input(t("rf.arith_n"), *LIMITS["ca_n"][:2], key="ca_n", help=t("rf.arith_n_help"))
f = c[1].number_input(t("rf.arith_f"), *LIMITS["ca_f"][:2], key="ca_f", help=t("rf.arith_f_help"))
p = c[2].number_input(t("rf.arith_p"), *LIMITS["ca_p"][:2], key="ca_p", help=t("rf.arith_p_help"))
s = c[3].number_input(t("rf.arith_s"), *LIMITS["ca_s"][:2], key="ca_s", help=t("rf.arith_s_help"))
d = c[4].number_input(t("rf.arith_d"), *LIMITS["ca_d"][:2], key="ca_d", help=t("rf.arith_d_help"))

try:
    a = conv_arithmetic(int(n), int(f), int(p), int(s), int(d))
except ValueError as exc:
    st.error(t("rf.arith_invalid", message=exc))
    a = None

if a is not None:
    m = st.columns(4)
    m[0].metric(t("rf.arith_output"), f"{a.output}×{a.output}")
    m[1].metric(t("rf.arith_effective"), a.effective_kernel, help=t("rf.arith_effective_help"))
    m[2].metric(t("rf.arith_same"), f"{a.same_padding:g}", help=t("rf.arith_same_help"))
    m[3].metric(t("rf.arith_windows"), a.output * a.output)
    st.markdown(t("rf.arith_formula", formula=a.formula))
    st.code(f"{a.formula_numbers}\nnn.Conv2d(C_in, C_out, kernel_size={a.f}, stride={a.s}, padding={a.p}, dilation={a.d})"
            f"  # {a.n}×{a.n} → {a.output}×{a.output}", language="python")
    draw_grid = a.padded <= MAX_GRID_SIDE
    if a.exact_fit:
        st.success(t("rf.arith_fits", span_formula=f"{a.span_formula} = {a.span_numbers}", span=a.span, s=a.s))
    else:
        # Which of the last rows are never visited, and their colours only where the grid below draws them.
        red = t("rf.arith_colour_unvisited") if draw_grid else ""
        grey = t("rf.arith_colour_unvisited_padding") if draw_grid else ""
        if not a.leftover_padding:
            which = t("rf.arith_leftover_input", colour=red)
        elif not a.leftover_input:
            which = t("rf.arith_leftover_padding", colour=grey)
            if not a.never_read_input:  # nothing else skipped either (dilated taps can leave gaps: below)
                which += " " + t("rf.arith_no_input_skipped")
        else:
            which = t("rf.arith_leftover_mixed", k_in=a.leftover_input, k_pad=a.leftover_padding,
                      colour_input=red, colour_padding=grey)
        st.warning(t("rf.arith_not_divisible", span_formula=f"{a.span_formula} = {a.span_numbers}", span=a.span,
                     s=a.s, q=f"{a.quotient:.4g}", out=a.output, leftover=a.leftover, which=which))
    # Input rows that no window reads although they are not at the end: the gaps between dilated taps
    trailing = set(range(a.n - a.leftover_input, a.n)) if not a.exact_fit else set()
    gaps = [r for r in a.never_read_input if r not in trailing]
    if gaps:
        shown = ", ".join(map(str, gaps[:12])) + (", …" if len(gaps) > 12 else "")
        st.warning(t("rf.arith_gaps", count=len(gaps), rows=shown, d=a.d, s=a.s,
                     colour=t("rf.arith_colour_unvisited") if draw_grid else ""))
    if a.d > 1:
        st.info(t("rf.arith_dilated", d=a.d, f=a.f, eff=a.effective_kernel, plain=a.n - a.f + 2 * a.p, span=a.span))
    if a.keeps_size:
        st.info(t("rf.arith_keeps"))
    elif a.same_padding_is_whole:
        st.info(t("rf.arith_same_hint", p=int(a.same_padding), s=a.s))
    elif a.d > 1:  # the number shown is D(F − 1)/2, and the text names that formula
        st.info(t("rf.arith_even_kernel_dilated", d=a.d, p=f"{a.same_padding:g}"))
    else:
        st.info(t("rf.arith_even_kernel", p=f"{a.same_padding:g}"))

    windows = a.output * a.output
    index = 0
    if windows > 1:
        within("ca_pos", 1, windows, 1)
        index = st.slider(t("rf.arith_position"), 1, windows, key="ca_pos", help=t("rf.arith_position_help")) - 1
    row, col = divmod(index, a.output)
    if draw_grid:
        names = {INPUT: t("rf.cell_input"), PADDING: t("rf.cell_padding"), TAP: t("rf.cell_tap"),
                 GAP: t("rf.cell_gap"), UNVISITED: t("rf.cell_unvisited"),
                 UNVISITED_PADDING: t("rf.cell_unvisited_padding")}
        st.plotly_chart(kernel_positions_figure(a, index, input_title=t("rf.arith_padded_input"),
                                                output_title=t("rf.arith_output_map"), cell_names=names),
                        width="stretch", key="ca_grid")
    st.caption(t("rf.arith_grid_caption", row=row, col=col, r0=a.positions[row], c0=a.positions[col]))
    if not draw_grid:
        st.caption(t("rf.arith_grid_too_large", padded=a.padded, limit=MAX_GRID_SIDE))

# --- three 3×3 layers vs one big kernel ------------------------------------------------------------------
st.subheader(t("rf.stack_title"))
st.caption(t("rf.stack_intro"))
within("ca_c", 1, 2048, 64)
within("ca_l", 2, 8, 3)  # a stack: one layer would be compared with itself
if st.session_state.get("ca_k") not in (3, 5):
    st.session_state["ca_k"] = 3
within("ca_hw", 7, 224, 56)
c = st.columns(4)
channels = c[0].number_input(t("rf.stack_c"), 1, 2048, key="ca_c")
layers = c[1].slider(t("rf.stack_l"), 2, 8, key="ca_l")
kernel = c[2].selectbox(t("rf.stack_k"), [3, 5], key="ca_k")
spatial = c[3].slider(t("rf.stack_hw"), 7, 224, key="ca_hw")
cmp = compare_stack(int(channels), int(layers), int(kernel), int(spatial))
K, L, B = cmp.kernel, cmp.layers, cmp.big_kernel
stack_label = t("rf.stack_name", l=L, k=K)
big_label = t("rf.big_name", k=B)
comparison = pd.DataFrame({
    t("rf.stack_property"): [t("rf.stack_field"), t("rf.stack_weights"), t("rf.stack_nonlin"), t("rf.stack_madds")],
    stack_label: [f"1 + {L}×({K} − 1) = {cmp.stack_field}", f"{L}·{K}²C² = {cmp.stack_weights_per_c2}C² = {cmp.stack_weights:,}",
                  str(cmp.stack_nonlinearities), f"{cmp.stack_mult_adds:,}"],
    big_label: [f"{cmp.big_field}", f"{B}²C² = {cmp.big_weights_per_c2}C² = {cmp.big_weights:,}",
                str(cmp.big_nonlinearities), f"{cmp.big_mult_adds:,}"],
})
st.dataframe(comparison, hide_index=True, width="stretch")
st.success(t("rf.stack_summary", stack=stack_label, big=big_label, pct=f"{100 * cmp.weight_saving:.0f}",
             times=f"{cmp.big_over_stack:.2f}", nonlin=cmp.stack_nonlinearities))
# One course note says the stack has "81 % fewer" parameters than one 7×7; its own 27C² vs 49C² give 45 % fewer
# (49/27 = 1.81: the single 7×7 needs 81 % MORE). Shown beside the figure computed here.
notes = compare_stack(1, 3, 3, 1)
st.warning(t("rf.stack_notes_claim", stack=notes.stack_weights_per_c2, big=notes.big_weights_per_c2,
             fewer=f"{100 * notes.weight_saving:.0f}", more=f"{100 * (notes.big_over_stack - 1):.0f}"))
st.plotly_chart(stack_diagram_figure(cmp, input_label=t("rf.stack_input"), layer_label=t("rf.stack_layer"),
                                     stack_title=stack_label, big_title=big_label), width="stretch", key="ca_stack")
st.caption(t("rf.stack_caption"))
