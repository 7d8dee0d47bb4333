"""Spanish names, and no rule at all: each result keeps its inputs in `entradas` and,
beside them, the local derivatives as plain numbers in `_local_grads`; backward
multiplies them by the node's `gradiente`."""
import math

STYLE = "numbers in _local_grads beside entradas, no rule (Spanish names)"


class Valor:
    def __init__(self, numero, entradas=(), local_grads=(), op=None):
        self.numero = float(numero)
        self.entradas = tuple(entradas)
        self._local_grads = tuple(local_grads)
        self.gradiente = 0.0
        self.op = op

    def __mul__(self, otro):
        return Valor(self.numero * otro.numero, (self, otro), (otro.numero, self.numero), "mul")

    def __add__(self, otro):
        return Valor(self.numero + otro.numero, (self, otro), (1.0, 1.0), "add")

    def log(self):
        return Valor(math.log(self.numero), (self,), (1 / self.numero,), "log")

    def retro(self):
        orden, vistos = [], set()

        def visitar(v):
            if id(v) not in vistos:
                vistos.add(id(v))
                for e in v.entradas:
                    visitar(e)
                orden.append(v)
        visitar(self)
        for v in orden:
            v.gradiente = 0.0
        self.gradiente = 1.0
        for v in reversed(orden):
            for e, local in zip(v.entradas, v._local_grads):
                e.gradiente += local * v.gradiente


def backward(out, inputs):
    out.retro()


def build():
    a, b = Valor(3.0), Valor(0.25)
    out = (a * b + a).log() * b
    return out, {"a": a, "b": b}
